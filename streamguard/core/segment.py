"""A segment: the unit that is moderated, recorded and alerted on."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from streamguard.core.chunk import SAMPLE_RATE, Pcm

__all__ = [
    "DATA_ID_PATTERN",
    "STREAM_ID_PATTERN",
    "Segment",
    "SegmentFlag",
    "SegmentInfo",
    "segment_id",
]

DATA_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-@#]{1,64}$")
"""What AMS accepts as a DataId; every segment id matches it."""

STREAM_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-@#]{1,40}$")
"""Stream ids are short enough that a segment id built from one stays a valid DataId."""


class SegmentFlag(StrEnum):
    GAP_BEFORE = "gap_before"
    """Audio of the room was not heard just before this segment (e.g. a reconnect)."""
    DISCONTINUITY = "discontinuity"
    """The media timeline broke inside or before this segment."""
    PARTIAL = "partial"
    """Shorter than the configured length: the tail at detach or shutdown."""


def segment_id(stream_id: str, attached_at: datetime, seq: int) -> str:
    """``{stream}-{attach time}-{seq}``: unique across restarts, valid as an AMS DataId."""
    return f"{stream_id}-{attached_at:%Y%m%d%H%M%S}-{seq:05d}"


@dataclass(frozen=True, slots=True)
class Segment:
    """Exactly ``len(samples)`` samples of one stream's audio, with where and when they were heard.

    ``started_at``/``ended_at`` are UTC wall-clock times of the first sample and just after the
    last one; with a gap inside, ``ended_at - started_at`` exceeds ``duration``. ``media_start``
    is seconds of this stream's audio heard before the segment since it was attached.
    """

    stream_id: str
    seq: int
    attached_at: datetime
    samples: Pcm
    started_at: datetime
    ended_at: datetime
    media_start: float
    gap_before: float
    flags: frozenset[SegmentFlag]

    @property
    def id(self) -> str:
        return segment_id(self.stream_id, self.attached_at, self.seq)

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def info(self) -> SegmentInfo:
        """The segment without its audio."""
        return SegmentInfo(
            stream_id=self.stream_id,
            seq=self.seq,
            attached_at=self.attached_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            media_start=self.media_start,
            duration=self.duration,
            gap_before=self.gap_before,
            flags=self.flags,
        )

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description of the segment, without its audio."""
        return self.info().metadata()


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What is known of a segment once its audio is gone: enough to record and alert on it
    when its verdict comes late (an AMS task that settles after a restart)."""

    stream_id: str
    seq: int
    attached_at: datetime
    started_at: datetime
    ended_at: datetime
    media_start: float
    duration: float
    gap_before: float
    flags: frozenset[SegmentFlag]

    @property
    def id(self) -> str:
        return segment_id(self.stream_id, self.attached_at, self.seq)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description of the segment (``Segment.metadata``)."""
        return {
            "segment_id": self.id,
            "stream_id": self.stream_id,
            "seq": self.seq,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "media_start": round(self.media_start, 6),
            "duration": round(self.duration, 6),
            "gap_before": round(self.gap_before, 3),
            "flags": sorted(self.flags),
        }

    def to_json(self) -> str:
        """For storage; ``from_json`` reads it back exactly."""
        return json.dumps(
            {
                "stream_id": self.stream_id,
                "seq": self.seq,
                "attached_at": self.attached_at.isoformat(),
                "started_at": self.started_at.isoformat(),
                "ended_at": self.ended_at.isoformat(),
                "media_start": self.media_start,
                "duration": self.duration,
                "gap_before": self.gap_before,
                "flags": sorted(self.flags),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SegmentInfo:
        data = json.loads(text)
        return cls(
            stream_id=data["stream_id"],
            seq=int(data["seq"]),
            attached_at=datetime.fromisoformat(data["attached_at"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            ended_at=datetime.fromisoformat(data["ended_at"]),
            media_start=float(data["media_start"]),
            duration=float(data["duration"]),
            gap_before=float(data["gap_before"]),
            flags=frozenset(SegmentFlag(f) for f in data["flags"]),
        )
