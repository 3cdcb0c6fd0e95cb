"""How video frames are sampled from a stream that has video (``[ingest.frames]``)."""

from __future__ import annotations

from pydantic import Field

from streamguard.config.base import Section

__all__ = ["FramesConfig"]


class FramesConfig(Section):
    enabled: bool = Field(
        True,
        description=(
            "Sample frames from streams that carry video, to be judged beside the audio. "
            "Streams without video are read as before either way."
        ),
    )
    keyframes_only: bool = Field(
        True,
        description=(
            "Decode keyframes only (FFmpeg's skip_frame=nokey), so reading video costs little "
            "more than demuxing it; false decodes every frame."
        ),
    )
    interval: float = Field(
        5.0, gt=0, le=3600, description="At most one frame per this many seconds of the stream."
    )
    scene_threshold: float = Field(
        0.15,
        ge=0,
        le=1,
        description=(
            "A frame that differs from the one decoded before it by this share (mean absolute "
            "difference of small grey thumbnails, 0-1) is a scene change and is taken even "
            "inside the interval (at most one a second); 0 turns scene changes off. The "
            "default is a starting point, not tuned on real rooms."
        ),
    )
    duplicate_distance: int = Field(
        6,
        ge=0,
        le=64,
        description=(
            "A frame whose 64-bit difference hash (dHash) is within this many bits of one of "
            "the last frames taken is a near-duplicate and is not judged again; 0 drops exact "
            "hash matches only."
        ),
    )
    max_side: int = Field(
        640,
        ge=64,
        le=4096,
        description="Frames are scaled down to at most this many pixels on their longer side.",
    )
