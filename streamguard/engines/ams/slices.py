"""``SliceBook``: the slices of a live stream's AMS tasks, handed out as our segments.

Slices arrive by poll (every slice so far) and by callback (hits, or every slice with the
console's full callbacks), in any order and more than once. Each goes out once, in time
order: a called-back slice that follows on from the last one handed out goes out at once;
any other waits for the next poll. A slice becomes a ``SegmentInfo`` (times from
``OffsetTime``, the Unix second its audio starts, and its ``Duration``, else
``MediaInfo.Duration``; ids in the stream's own sequence, across tasks; a gap flagged) with
its verdict (``verdicts.from_slice``) and AMS's copy of the audio as evidence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from streamguard.core.segment import SegmentFlag, SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.engines.ams import verdicts
from streamguard.tencentcloud.models import AudioSegment, TaskDetail

__all__ = ["DEFAULT_SLICE_SECONDS", "DUE_MARGIN", "GAP_TOLERANCE", "JudgedSlice", "SliceBook"]

DEFAULT_SLICE_SECONDS = 30.0
"""A slice's length when AMS names none (its console's default)."""
GAP_TOLERANCE = 1.5
"""Seconds between two slices that still count as continuous (OffsetTime is whole seconds)."""
DUE_MARGIN = 1.5
"""Seconds after its expected processing when a slice is looked for (OffsetTime is whole
seconds, so a slice may end up to 1 s later than it says)."""


@dataclass(frozen=True, slots=True)
class JudgedSlice:
    """A slice AMS cut and judged, as one of our segments."""

    segment: SegmentInfo
    verdict: Verdict
    evidence_url: str
    """AMS's stored copy of the slice ("" when it gave none; it expires in 12-24 h)."""


class SliceBook:
    """Hands each slice out once, in time order, on ``out`` (None ends the stream)."""

    def __init__(
        self,
        stream_id: str,
        attached_at: datetime,
        languages: Collection[str],
        clock: Callable[[], float],
    ) -> None:
        self.stream_id = stream_id
        self.attached_at = attached_at
        self._languages = languages
        self._clock = clock
        self.out: asyncio.Queue[JudgedSlice | None] = asyncio.Queue()
        self._seq = 0
        self._last_end: datetime | None = None
        self._seen: set[tuple[str, str]] = set()
        self._called_back: dict[tuple[str, str], AudioSegment] = {}
        self._media_seconds = 0.0
        self._last_seconds = 0.0
        self.handed_out = 0
        """Slices handed out so far."""
        self.every_slice_called_back = False
        """Whether AMS calls back slices that did not hit (the console's full callbacks):
        then slices come by callback and polls are only a safety net."""

    def next_slice_due(self, processing_ratio: float, since: float) -> float | None:
        """The Unix time the next slice should be judged by: a slice length and its
        processing after the last one's end (or after ``since``, when the task started, if
        later), plus ``DUE_MARGIN``; None while the slice length is unknown."""
        length = self._media_seconds or self._last_seconds
        if not length:
            return None
        start = max(since, self._last_end.timestamp() if self._last_end else since)
        return start + length * (1 + processing_ratio) + DUE_MARGIN

    def called_back(self, task_id: str, detail: TaskDetail) -> bool:
        """Take a callback's slices; True when some must wait for a poll (a gap before)."""
        self._learn_slice_length(detail)
        waiting = False
        if any(p.result is not None and not p.result.hit_flag for p in detail.audio_segments):
            self.every_slice_called_back = True
        for piece in sorted(detail.audio_segments, key=lambda p: p.offset_seconds):
            key = (task_id, piece.offset_time)
            if key in self._seen:
                continue
            if not waiting and piece.result is not None and self._follows_on(piece):
                self._hand_out(task_id, key, piece)
            else:
                waiting = True
                self._called_back.setdefault(key, piece)
        return waiting

    def polled(
        self, task_id: str, polled: list[AudioSegment], detail: TaskDetail | None = None
    ) -> None:
        """Hand out, in time order, every slice of ``task_id`` not handed out before: those
        of a poll (``polled``) and those callbacks brought meanwhile."""
        if detail is not None:
            self._learn_slice_length(detail)
        pieces = {(task_id, p.offset_time): p for p in polled}
        for key in [k for k in self._called_back if k[0] == task_id]:
            called = self._called_back.pop(key)
            if pieces.get(key) is None or pieces[key].result is None:
                pieces[key] = called  # the poll may lag the callback, or lack the result
        for key, piece in sorted(pieces.items(), key=lambda item: item[1].offset_seconds):
            if key not in self._seen:
                self._hand_out(task_id, key, piece)

    def _learn_slice_length(self, detail: TaskDetail) -> None:
        if detail.media_info is not None and detail.media_info.duration > 0:
            self._media_seconds = detail.media_info.duration / 1000

    def _follows_on(self, piece: AudioSegment) -> bool:
        """Whether ``piece`` starts where the last slice handed out ended (whole seconds)."""
        if self._last_end is None:
            return False
        return abs(piece.offset_seconds - self._last_end.timestamp()) <= GAP_TOLERANCE

    def _hand_out(self, task_id: str, key: tuple[str, str], piece: AudioSegment) -> None:
        self._seen.add(key)
        self.handed_out += 1
        self.out.put_nowait(self._judged(task_id, piece))

    def _segment(self, piece: AudioSegment) -> SegmentInfo:
        result = piece.result
        seconds = (result.duration / 1000 if result else 0.0) or self._media_seconds
        seconds = seconds if seconds > 0 else DEFAULT_SLICE_SECONDS
        offset = piece.offset_seconds
        if offset < 1e9:  # not a Unix time: an offset into the task (as for files)
            offset += self._clock() - seconds
        started = datetime.fromtimestamp(offset, UTC)
        gap = 0.0 if self._last_end is None else (started - self._last_end).total_seconds()
        flags = frozenset({SegmentFlag.GAP_BEFORE}) if gap > GAP_TOLERANCE else frozenset()
        segment = SegmentInfo(
            stream_id=self.stream_id,
            seq=self._seq,
            attached_at=self.attached_at,
            started_at=started,
            ended_at=started + timedelta(seconds=seconds),
            media_start=max(0.0, (started - self.attached_at).total_seconds()),
            duration=seconds,
            gap_before=max(0.0, gap) if flags else 0.0,
            flags=flags,
        )
        self._seq += 1
        self._last_seconds = seconds
        self._last_end = max(segment.ended_at, self._last_end or segment.ended_at)
        return segment

    def _judged(self, task_id: str, piece: AudioSegment) -> JudgedSlice:
        segment = self._segment(piece)
        verdict = verdicts.from_slice(segment.id, task_id, piece, self._languages)
        url = piece.result.url if piece.result else ""
        if url:
            verdict = replace(verdict, details={**verdict.details, "evidence_url": url})
        return JudgedSlice(segment, verdict, url)
