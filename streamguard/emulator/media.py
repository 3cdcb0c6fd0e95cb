"""Decoding a task's audio into fixed slices with PyAV (runs in a worker thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import BinaryIO

import av
import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, Pcm

__all__ = ["DecodeFailure", "decode_slices"]


class DecodeFailure(Exception):
    """The audio could not be opened or decoded; ``error_type`` is the task's ErrorType."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def decode_slices(
    source: str | BinaryIO,
    slice_seconds: int,
    emit: Callable[[Pcm], None],
    stop: threading.Event,
    timeout: float = 10.0,
) -> float:
    """Decode ``source`` to 16 kHz mono s16 and ``emit`` every full slice and the tail.

    Returns the seconds of audio decoded. A URL source is read live (``timeout`` bounds
    the open and every read); ``stop`` ends the read between packets. Raises
    ``DecodeFailure`` (URL_ERROR when a URL cannot be opened, DECODE_ERROR otherwise).
    """
    size = slice_seconds * SAMPLE_RATE
    pieces: list[Pcm] = []
    pending = 0
    total = 0
    try:
        if isinstance(source, str):
            container = av.open(source, mode="r", timeout=(timeout, timeout))
        else:
            container = av.open(source, mode="r")
    except (av.FFmpegError, OSError) as exc:
        kind = "URL_ERROR" if isinstance(source, str) else "DECODE_ERROR"
        raise DecodeFailure(kind, f"cannot open the audio: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise DecodeFailure("DECODE_ERROR", "the media has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

        def take(frames: list[av.AudioFrame]) -> None:
            nonlocal pending, total
            for frame in frames:
                samples = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                pieces.append(samples)
                pending += len(samples)
                total += len(samples)
            while pending >= size:
                joined = np.concatenate(pieces)
                emit(joined[:size])
                rest = joined[size:]
                pieces[:] = [rest] if len(rest) else []
                pending = len(rest)

        try:
            for packet in container.demux(stream):
                if stop.is_set():
                    return total / SAMPLE_RATE
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue  # one bad packet is skipped, as a decoder in production would
                for frame in frames:
                    frame.pts = None
                    take(resampler.resample(frame))
            take(resampler.resample(None))
        except (av.FFmpegError, OSError) as exc:
            raise DecodeFailure("DECODE_ERROR", f"cannot decode the audio: {exc}") from exc
    if total == 0:
        raise DecodeFailure("DECODE_ERROR", "the audio holds no samples")
    if pending:
        emit(np.concatenate(pieces))
    return total / SAMPLE_RATE
