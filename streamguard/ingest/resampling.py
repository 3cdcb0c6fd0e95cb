"""Decoded audio to 16 kHz mono s16, resampled in batches of about half a second.

A codec's frames are short (1024 samples of AAC, 1152 of MP3: 23-26 ms), and PyAV's resampler
costs far more per call than per sample (a filter-graph push and pull, a new frame object and
a timing fraction per call, an exception to say "nothing more"): resampled one frame at a
time, 44.1 kHz audio cost more to resample than to decode. :class:`HeardBatches` gathers
consecutive frames in an :class:`av.AudioFifo` and resamples them as one frame. The samples
out are the same, to the bit, as frame by frame: the resampler is a stream filter, and
how its input is cut does not change its output.

A batch only ever holds frames that follow each other without a break, so it stands for them
exactly on the timeline (:class:`Heard`): it is closed before a frame whose sample rate,
layout or sample format differs, or whose timestamp is not where the previous frame ended
(within :data:`JOIN_TOLERANCE`, well under the timeline's own tolerance for wobble), and
when it holds :data:`BATCH_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from streamguard.core.chunk import SAMPLE_RATE, Pcm

__all__ = ["BATCH_SECONDS", "JOIN_TOLERANCE", "Heard", "HeardBatches", "MonoResampler"]

BATCH_SECONDS = 0.5
"""Decoded audio resampled at once: two batches make a timeline chunk (about a second)."""

JOIN_TOLERANCE = 0.005
"""A frame timed within this many seconds of where the batch ends joins it. The timeline
notices breaks from 0.5 s (:mod:`~streamguard.ingest.timeline`): a joined frame is one it
would have let pass."""


class MonoResampler:
    """Any decoded audio to 16 kHz mono s16, across mid-stream format changes.

    PyAV's resampler raises ``ValueError`` when the input's rate or layout changes; the old
    one is flushed first (its filter still holds a few milliseconds) and a new one built.
    """

    def __init__(self) -> None:
        self._resampler = self._new()
        self.changes = 0

    @staticmethod
    def _new() -> AudioResampler:
        return AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def feed(self, frame: AudioFrame) -> list[Pcm]:
        """Resample one decoded frame; returns the 16 kHz samples it completed."""
        # Timestamps are ours to keep (by sample count); stream pts jump at HLS
        # discontinuities and reconnects and must not steer the filter.
        frame.pts = None
        try:
            return _pcm(self._resampler.resample(frame))
        except ValueError:
            tail = self.flush()
            self.changes += 1
            return tail + _pcm(self._resampler.resample(frame))

    def flush(self) -> list[Pcm]:
        """Everything still held, and a fresh resampler for whatever comes next."""
        tail = _pcm(self._resampler.resample(None))
        self._resampler = self._new()
        return tail


def _pcm(frames: list[AudioFrame]) -> list[Pcm]:
    # The packed s16 plane read directly: to_ndarray() costs four times as much (it stacks
    # planes). Planes are padded: count samples.
    return [np.frombuffer(memoryview(f.planes[0]), np.int16, f.samples) for f in frames]


@dataclass(frozen=True, slots=True)
class Heard:
    """Decoded audio, resampled: where it sits on the stream's own clock, and its samples.

    ``media_start`` is ``None`` when the stream gave the audio no usable timestamp (and for
    the resampler's tail at the end of a connection); ``media_seconds`` is how far the audio
    reaches on that clock from there. ``format_changed`` says the sample rate or layout
    changed here: a break in the media timeline, not a loss.
    """

    media_start: float | None
    media_seconds: float
    pcm: list[Pcm]
    format_changed: bool = False


class HeardBatches:
    """Decoded frames in, :class:`Heard` batches out. Reader thread only.

    :meth:`add` each decoded frame in order; it returns the batches that frame closed. :meth:`cut`
    resamples what is gathered (before a drain, or whenever the caller wants it out);
    :meth:`tail` is what the resampler still holds, at the end of a connection.
    ``format_change`` is called each time the resampler had to be rebuilt.
    """

    def __init__(self, format_change: Callable[[], None]) -> None:
        self._resampler = MonoResampler()
        self._format_change = format_change
        self._fifo = av.AudioFifo()
        self._kind: tuple[str, str, int] | None = None  # format, layout, rate of the batch
        self._start: float | None = None  # media time of the batch's first frame
        self._end = 0.0  # media time (or, untimed, seconds) where the batch ends
        self._samples = 0  # input samples gathered
        self._limit = 0  # input samples that make a batch

    def add(self, frame: AudioFrame) -> list[Heard]:
        """Gather one decoded frame; returns the batches closed by it (often none)."""
        rate = frame.sample_rate
        if not rate or not frame.samples:
            return []
        kind = (frame.format.name, frame.layout.name, rate)
        at = frame.time
        seconds = frame.samples / rate
        closed = []
        if self._samples and (kind != self._kind or not self._follows(at)):
            closed.append(self._close())
        if not self._samples:
            self._begin(kind, at)
        frame.pts = None  # the FIFO would check them; timing is kept here, not in frames
        self._fifo.write(frame)
        self._samples += frame.samples
        self._end = (self._end if at is None else at) + seconds
        if self._samples >= self._limit:
            closed.append(self._close())
        return closed

    def cut(self) -> list[Heard]:
        """What is gathered, resampled now (nothing if nothing is)."""
        return [self._close()] if self._samples else []

    def tail(self) -> Heard:
        """What the resampler still holds, untimed; a fresh resampler for what comes next."""
        return Heard(media_start=None, media_seconds=0.0, pcm=self._resampler.flush())

    def _follows(self, at: float | None) -> bool:
        if self._start is None or at is None:
            return self._start is None and at is None
        return abs(at - self._end) < JOIN_TOLERANCE

    def _begin(self, kind: tuple[str, str, int], at: float | None) -> None:
        if kind != self._kind:
            self._fifo = av.AudioFifo()  # a FIFO keeps the format of its first frame
            self._kind = kind
            self._limit = round(kind[2] * BATCH_SECONDS)
        self._start = at
        self._end = 0.0

    def _close(self) -> Heard:
        frame = self._fifo.read()
        assert frame is not None
        start, seconds = self._start, self._end - (self._start or 0.0)
        self._samples = 0
        changes = self._resampler.changes
        pcm = self._resampler.feed(frame)
        changed = self._resampler.changes != changes
        if changed:
            self._format_change()
        return Heard(media_start=start, media_seconds=seconds, pcm=pcm, format_changed=changed)
