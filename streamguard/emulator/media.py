"""A task's audio: fetched from its URL and decoded into fixed slices with PyAV.

``decode_slices`` runs in a worker thread; ``MediaReader`` is its side on the event loop: it
owns the download session and the decode threads, and hands each slice to the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import BinaryIO, Self

import aiohttp
import av
import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, Pcm

__all__ = ["DecodeFailure", "MediaReader", "decode_slices"]


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
    slicer = _Slicer(slice_seconds * SAMPLE_RATE, emit)
    with _open(source, timeout) as container:
        if not container.streams.audio:
            raise DecodeFailure("DECODE_ERROR", "the media has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            for packet in container.demux(stream):
                if stop.is_set():
                    return slicer.total / SAMPLE_RATE
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue  # one bad packet is skipped, as a decoder in production would
                for frame in frames:
                    frame.pts = None
                    slicer.take(resampler.resample(frame))
            slicer.take(resampler.resample(None))
        except (av.FFmpegError, OSError) as exc:
            raise DecodeFailure("DECODE_ERROR", f"cannot decode the audio: {exc}") from exc
    return slicer.finish()


def _open(source: str | BinaryIO, timeout: float) -> av.container.InputContainer:
    """The opened container; DecodeFailure (URL_ERROR for a URL) when it cannot be opened."""
    try:
        if isinstance(source, str):
            return av.open(source, mode="r", timeout=(timeout, timeout))
        return av.open(source, mode="r")
    except (av.FFmpegError, OSError) as exc:
        kind = "URL_ERROR" if isinstance(source, str) else "DECODE_ERROR"
        raise DecodeFailure(kind, f"cannot open the audio: {exc}") from exc


class _Slicer:
    """Gathers resampled frames and emits them ``size`` samples at a time."""

    def __init__(self, size: int, emit: Callable[[Pcm], None]) -> None:
        self.size = size
        self.emit = emit
        self.pieces: list[Pcm] = []
        self.pending = 0
        self.total = 0

    def take(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            samples = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            self.pieces.append(samples)
            self.pending += len(samples)
            self.total += len(samples)
        while self.pending >= self.size:
            joined = np.concatenate(self.pieces)
            self.emit(joined[: self.size])
            rest = joined[self.size :]
            self.pieces = [rest] if len(rest) else []
            self.pending = len(rest)

    def finish(self) -> float:
        """Emit the tail; the seconds decoded, or DecodeFailure when there were none."""
        if self.total == 0:
            raise DecodeFailure("DECODE_ERROR", "the audio holds no samples")
        if self.pending:
            self.emit(np.concatenate(self.pieces))
        return self.total / SAMPLE_RATE


class MediaReader:
    """Fetches audio over HTTP and decodes it in worker threads: ``async with`` owns both.

    ``threads`` bounds the decodes running at once (each live task holds one throughout).
    """

    def __init__(self, *, slice_seconds: int, timeout: float, max_bytes: int, threads: int) -> None:
        self.slice_seconds = slice_seconds
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.threads = threads
        self._session: aiohttp.ClientSession | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._executor = ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="ams-emulator.decode"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        executor, self._executor = self._executor, None
        if session is not None:
            await session.close()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    async def download(self, url: str) -> bytes:
        """The file at ``url``; DecodeFailure(URL_ERROR) when it cannot be had."""
        assert self._session is not None
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise DecodeFailure("URL_ERROR", f"the url is request is {response.status}")
                content = bytearray()
                async for block in response.content.iter_chunked(1 << 16):
                    content += block
                    if len(content) > self.max_bytes:
                        break
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DecodeFailure("URL_ERROR", f"the url could not be fetched: {exc!r}") from exc
        if len(content) > self.max_bytes:
            raise DecodeFailure("URL_ERROR", "the file is larger than 500 MB")
        return bytes(content)

    async def slices(
        self,
        source: str | BinaryIO,
        on_slice: Callable[[Pcm], Awaitable[bool]],
        *,
        slice_seconds: int | None = None,
        stop: threading.Event | None = None,
    ) -> float:
        """Decode in a worker thread, handing each slice to ``on_slice`` on the loop.

        ``on_slice`` returning False, or ``stop`` being set, ends the decode. Returns the
        seconds decoded; raises DecodeFailure.
        """
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Pcm | None] = asyncio.Queue()
        stop = stop or threading.Event()
        seconds = slice_seconds or self.slice_seconds

        def emit(samples: Pcm | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, samples)
            except RuntimeError:
                stop.set()  # the loop is gone: stop reading

        def work() -> float:
            try:
                return decode_slices(source, seconds, emit, stop, self.timeout)
            finally:
                emit(None)

        future = loop.run_in_executor(self._executor, work)
        try:
            while (samples := await queue.get()) is not None:
                if not await on_slice(samples):
                    break
        finally:
            stop.set()
            await asyncio.wait([future])
        return future.result()
