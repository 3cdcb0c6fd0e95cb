"""Frames from a stream's video: which decoded pictures are taken to be judged, and which not.

The reader (:class:`~streamguard.ingest.reader.Connection`) hands every picture it decodes to
a :class:`FrameSampler`. With ``keyframes_only`` (the default) it decodes keyframes only
(FFmpeg's ``skip_frame=nokey``, and non-key packets are not even sent to the decoder), so
reading a stream's video costs little more than demuxing it. Of those pictures the sampler
takes:

- the first one;
- one when ``interval`` seconds of the stream have passed since the last one taken;
- one on a scene change: a picture whose small grey thumbnail differs from the previous
  picture's by ``scene_threshold`` or more (mean absolute difference, 0-1), at most one a
  second;

and drops a candidate whose 64-bit difference hash (dHash) is within ``duplicate_distance``
bits of one of the last :data:`RECENT_FINGERPRINTS` taken: a room that shows the same
picture for an hour is judged once, and again only when the picture changes. Only a
picture that is taken is converted to RGB and scaled down (to ``max_side``).

Each taken :class:`~streamguard.core.frame.Frame` is placed on the audio's timeline by the
source's :class:`~streamguard.ingest.timeline.Timeline` (the ``clock``): its offset at once,
its UTC time with the audio chunk it falls in, when it is handed to ``deliver``. Everything
here runs on the reader thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Protocol

import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame

from streamguard.config.frames import FramesConfig
from streamguard.core.frame import Frame, FrameReason, Picture

__all__ = [
    "RECENT_FINGERPRINTS",
    "FrameSampler",
    "FrameStats",
    "MediaClock",
    "fingerprint",
    "hamming",
    "picture_fingerprint",
    "scene_distance",
]

log = logging.getLogger(__name__)

RECENT_FINGERPRINTS = 32
"""How many taken frames a candidate is compared with for near-duplicates."""

_SCENE_GAP = 1.0  # seconds: scene changes are taken at most this often
_THUMB_W, _THUMB_H = 36, 32  # grey thumbnail: a 9x8 grid of 4x4 blocks for the dHash

Gray = npt.NDArray[np.float32]


class MediaClock(Protocol):
    """Places pictures on the audio's timeline (the source's ``Timeline``)."""

    def offset_of(self, media_time: float | None) -> float:
        """Seconds of audio heard since attach at a picture's media time."""
        ...

    def hold(self, media_time: float | None, then: Callable[[datetime], None]) -> None:
        """Call ``then`` with the picture's UTC time once the audio around it is stamped."""
        ...


def fingerprint(thumb: Gray) -> int:
    """The 64-bit difference hash of a 32x36 grey thumbnail: each bit says whether a block of
    a 9x8 grid is brighter than its left neighbour. Robust to scaling and re-encoding."""
    blocks = thumb.reshape(8, 4, 9, 4).mean(axis=(1, 3))
    bits = (blocks[:, 1:] > blocks[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits differ."""
    return (a ^ b).bit_count()


def scene_distance(a: Gray, b: Gray) -> float:
    """How different two grey thumbnails are: mean absolute difference, 0 (equal) to 1."""
    return float(np.abs(a - b).mean() / 255.0)


def picture_fingerprint(picture: Picture) -> int:
    """The dHash of an RGB picture of any size (the same as a frame of it would get)."""
    frame = VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    return fingerprint(_thumbnail(frame))


def _thumbnail(frame: VideoFrame) -> Gray:
    small = frame.reformat(width=_THUMB_W, height=_THUMB_H, format="gray", interpolation="AREA")
    return small.to_ndarray().astype(np.float32)


def _picture(frame: VideoFrame, max_side: int) -> Picture:
    scale = min(1.0, max_side / max(frame.width, frame.height))
    width = max(2, round(frame.width * scale / 2) * 2)
    height = max(2, round(frame.height * scale / 2) * 2)
    rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    return np.ascontiguousarray(rgb.to_ndarray(), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class FrameStats:
    """What the sampler saw: pictures decoded (all keyframes, with ``keyframes_only``),
    frames taken, candidates dropped as near-duplicates, scene changes taken, video packets
    the decoder rejected."""

    decoded: int = 0
    keyframes: int = 0
    taken: int = 0
    duplicates: int = 0
    scene_changes: int = 0
    corrupt_packets: int = 0


class FrameSampler:
    """Chooses the frames of one stream. Reader thread only (``stats`` is safe anywhere)."""

    def __init__(
        self,
        stream_id: str,
        attached_at: datetime,
        settings: FramesConfig,
        *,
        clock: MediaClock,
        deliver: Callable[[Frame], None],
    ) -> None:
        self._stream_id = stream_id
        self._attached_at = attached_at
        self._settings = settings
        self._clock = clock
        self._deliver = deliver
        self._recent: deque[int] = deque(maxlen=RECENT_FINGERPRINTS)
        self._previous: Gray | None = None  # the thumbnail of the last picture decoded
        self._last_taken: float | None = None  # its place on the timeline
        self._seq = 0
        self._stats = FrameStats()

    @property
    def keyframes_only(self) -> bool:
        return self._settings.keyframes_only

    @property
    def stats(self) -> FrameStats:
        return self._stats

    def corrupt_packet(self) -> None:
        """A video packet the decoder rejected (skipped, like a corrupt audio packet)."""
        self._count(corrupt_packets=1)

    def see(self, frame: VideoFrame) -> None:
        """One decoded picture, in order."""
        self._count(decoded=1, keyframes=int(frame.key_frame))
        thumb = _thumbnail(frame)
        offset = self._clock.offset_of(frame.time)
        reason = self._reason(thumb, offset)
        self._previous = thumb
        if reason is None:
            return
        hashed = fingerprint(thumb)
        limit = self._settings.duplicate_distance
        if any(hamming(hashed, seen) <= limit for seen in self._recent):
            self._count(duplicates=1)
            return
        self._recent.append(hashed)
        self._last_taken = offset
        self._seq += 1
        self._count(taken=1, scene_changes=int(reason is FrameReason.SCENE_CHANGE))
        taken = partial(
            Frame,
            stream_id=self._stream_id,
            seq=self._seq,
            attached_at=self._attached_at,
            media_offset=offset,
            picture=_picture(frame, self._settings.max_side),
            fingerprint=hashed,
            reason=reason,
            keyframe=bool(frame.key_frame),
        )
        self._clock.hold(frame.time, lambda taken_at: self._deliver(taken(taken_at=taken_at)))

    def _reason(self, thumb: Gray, offset: float) -> FrameReason | None:
        if self._last_taken is None:
            return FrameReason.FIRST
        since = offset - self._last_taken
        if since >= self._settings.interval:
            return FrameReason.INTERVAL
        threshold = self._settings.scene_threshold
        if (
            threshold > 0
            and self._previous is not None
            and since >= min(_SCENE_GAP, self._settings.interval)
            and scene_distance(self._previous, thumb) >= threshold
        ):
            return FrameReason.SCENE_CHANGE
        return None

    def _count(self, **more: int) -> None:
        # One writer (the reader thread); readers see a whole snapshot, never a torn one.
        s = self._stats
        self._stats = replace(s, **{name: getattr(s, name) + n for name, n in more.items()})
