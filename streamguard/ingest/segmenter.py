"""Cut a stream's audio into segments of exactly N samples."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, AudioChunk, Pcm
from streamguard.core.segment import Segment, SegmentFlag

__all__ = ["Segmenter"]


class Segmenter:
    """Turns chunks of any size into segments of exactly ``seconds`` of audio.

    Boundaries are counted in samples, never in wall-clock time, so a full segment always
    holds ``seconds * 16000`` samples. ``flush`` returns the partial tail on detach.
    """

    def __init__(
        self,
        stream_id: str,
        attached_at: datetime,
        seconds: int,
        *,
        heard_until: datetime | None = None,
    ) -> None:
        """``heard_until``: when the stream was last heard before this attach (by another
        instance, in fleet mode): the first segment is flagged with the gap since."""
        if seconds <= 0:
            raise ValueError(f"segment length must be positive, got {seconds}")
        self._stream_id = stream_id
        self._attached_at = attached_at
        self._length = seconds * SAMPLE_RATE
        self._pieces: list[Pcm] = []
        self._pending = 0
        self._seq = 0
        self._heard = 0  # samples emitted in earlier segments
        self._started_at: datetime | None = None
        self._last_end: datetime | None = None
        self._gap_before = 0.0
        self._flags: set[SegmentFlag] = set()
        self._heard_until = heard_until

    @property
    def pending_seconds(self) -> float:
        """Audio heard but not yet in an emitted segment."""
        return self._pending / SAMPLE_RATE

    def push(self, chunk: AudioChunk) -> list[Segment]:
        """Add a chunk; return the segments it completed (often none, sometimes several)."""
        if chunk.gap_before > 0:
            if self._pending == 0:
                self._gap_before += chunk.gap_before
            self._flags.add(
                SegmentFlag.GAP_BEFORE if self._pending == 0 else SegmentFlag.DISCONTINUITY
            )
        if chunk.discontinuity:
            self._flags.add(SegmentFlag.DISCONTINUITY)
        samples = chunk.samples
        offset = 0
        done: list[Segment] = []
        while offset < len(samples):
            if self._started_at is None:
                self._started_at = chunk.wall_start + timedelta(seconds=offset / SAMPLE_RATE)
                self._resume_gap(self._started_at)
            take = min(self._length - self._pending, len(samples) - offset)
            self._pieces.append(samples[offset : offset + take])
            self._pending += take
            offset += take
            self._last_end = chunk.wall_start + timedelta(seconds=offset / SAMPLE_RATE)
            if self._pending == self._length:
                done.append(self._emit(partial=False))
        return done

    def _resume_gap(self, started_at: datetime) -> None:
        """Flag the first segment with the time nobody heard the stream before it."""
        heard_until, self._heard_until = self._heard_until, None
        if heard_until is not None and started_at > heard_until:
            self._gap_before += (started_at - heard_until).total_seconds()
            self._flags.add(SegmentFlag.GAP_BEFORE)

    def flush(self) -> Segment | None:
        """Emit whatever is pending as a partial segment (None when nothing is)."""
        if self._pending == 0:
            return None
        return self._emit(partial=True)

    def _emit(self, *, partial: bool) -> Segment:
        assert self._started_at is not None
        assert self._last_end is not None
        samples = np.concatenate(self._pieces) if len(self._pieces) > 1 else self._pieces[0].copy()
        flags = frozenset(self._flags | ({SegmentFlag.PARTIAL} if partial else set()))
        segment = Segment(
            stream_id=self._stream_id,
            seq=self._seq,
            attached_at=self._attached_at,
            samples=samples,
            started_at=self._started_at,
            ended_at=self._last_end,
            media_start=self._heard / SAMPLE_RATE,
            gap_before=self._gap_before,
            flags=flags,
        )
        self._seq += 1
        self._heard += self._pending
        self._pieces = []
        self._pending = 0
        self._started_at = None
        self._gap_before = 0.0
        self._flags = set()
        return segment
