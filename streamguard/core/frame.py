"""A frame: one picture sampled from a stream's video, judged beside its audio segments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from streamguard.core.segment import SegmentInfo

__all__ = ["Frame", "FrameInfo", "FrameReason", "Picture", "frame_id"]

Picture = npt.NDArray[np.uint8]
"""An RGB picture, height x width x 3."""


class FrameReason(StrEnum):
    """Why a frame was taken."""

    FIRST = "first"
    """The first frame of the stream (since it was attached)."""
    INTERVAL = "interval"
    """The sampling interval had passed."""
    SCENE_CHANGE = "scene_change"
    """The picture changed a lot since the frame decoded before it."""


def frame_id(stream_id: str, attached_at: datetime, seq: int) -> str:
    """``{stream}-{attach time}-f{seq}``: beside the segment ids, valid as an IMS DataId."""
    return f"{stream_id}-{attached_at:%Y%m%d%H%M%S}-f{seq:05d}"


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One picture of a stream, placed on the same timeline as its audio segments.

    ``media_offset`` is seconds of this stream's audio heard before the picture since it was
    attached (the clock of ``Segment.media_start``), so the segment it falls in is the one
    whose ``media_start <= media_offset < media_start + duration``. ``taken_at`` is its UTC
    wall time, stamped like the audio around it. ``fingerprint`` is its 64-bit difference
    hash (dHash) and ``picture`` its pixels, scaled down to the configured size.
    """

    stream_id: str
    seq: int
    attached_at: datetime
    taken_at: datetime
    media_offset: float
    picture: Picture
    fingerprint: int
    reason: FrameReason
    keyframe: bool

    @property
    def id(self) -> str:
        return frame_id(self.stream_id, self.attached_at, self.seq)

    @property
    def width(self) -> int:
        return int(self.picture.shape[1])

    @property
    def height(self) -> int:
        return int(self.picture.shape[0])

    def info(self) -> FrameInfo:
        """The frame without its pixels, as the moderation path records and alerts on it."""
        return FrameInfo(
            stream_id=self.stream_id,
            seq=self.seq,
            attached_at=self.attached_at,
            started_at=self.taken_at,
            ended_at=self.taken_at,
            media_start=self.media_offset,
            duration=0.0,
            gap_before=0.0,
            flags=frozenset(),
            width=self.width,
            height=self.height,
            fingerprint=self.fingerprint,
            reason=self.reason,
        )

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description of the frame, without its pixels."""
        return self.info().metadata()


@dataclass(frozen=True, slots=True)
class FrameInfo(SegmentInfo):
    """A frame as a moment of its stream: what the results, incidents and alerts of the audio
    know of a segment (a segment of no duration, at the frame's time and offset), under the
    frame's own id, with the picture's size, fingerprint and why it was taken. A frame hit
    and an audio hit of one room and label are thus one incident."""

    width: int
    height: int
    fingerprint: int
    reason: FrameReason

    @property
    def id(self) -> str:
        return frame_id(self.stream_id, self.attached_at, self.seq)

    def frame_json(self) -> dict[str, Any]:
        """The frame's own fields (the alert's ``frame``)."""
        return {
            "id": self.id,
            "taken_at": self.started_at.isoformat(),
            "media_offset": round(self.media_start, 3),
            "width": self.width,
            "height": self.height,
            "fingerprint": f"{self.fingerprint:016x}",
            "reason": self.reason.value,
        }

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description: a segment's fields, and the frame's under ``frame``."""
        return {**SegmentInfo.metadata(self), "frame": self.frame_json()}
