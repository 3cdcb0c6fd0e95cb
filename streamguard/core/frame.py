"""A frame: one picture sampled from a stream's video, judged beside its audio segments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Frame", "FrameReason", "Picture", "frame_id"]

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

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description of the frame, without its pixels."""
        return {
            "frame_id": self.id,
            "stream_id": self.stream_id,
            "seq": self.seq,
            "taken_at": self.taken_at.isoformat(),
            "media_offset": round(self.media_offset, 3),
            "width": self.width,
            "height": self.height,
            "fingerprint": f"{self.fingerprint:016x}",
            "reason": self.reason.value,
            "keyframe": self.keyframe,
        }
