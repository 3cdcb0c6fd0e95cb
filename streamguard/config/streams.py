"""The rooms a daemon attaches to."""

from __future__ import annotations

from pydantic import Field

from streamguard.config.base import Section
from streamguard.config.ingest import SegmentSeconds
from streamguard.core.segment import STREAM_ID_PATTERN

__all__ = ["StreamConfig"]


class StreamConfig(Section):
    id: str = Field(
        pattern=STREAM_ID_PATTERN.pattern,
        description="Stable stream id: 1-40 of A-Z a-z 0-9 _ - @ #.",
    )
    url: str = Field(min_length=1, description="Where the audio comes from (URL or file path).")
    room: str = Field("", description="Room the stream belongs to; defaults to the stream id.")
    profile: str = Field("default", description="Policy profile that judges this stream.")
    segment_seconds: SegmentSeconds | None = Field(
        None, description="Segment length for this stream; defaults to ingest.segment_seconds."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Free key/values copied into every alert."
    )

    @property
    def room_id(self) -> str:
        return self.room or self.id
