"""The rooms a daemon attaches to.

Ids and rooms become MQTT topic levels and database keys, so they are bounded: a stream id is
1-40 of ``A-Z a-z 0-9 _ - @ #``; a room is 1-128 printable characters (no control, format,
private-use or unassigned code points). Percent-encoded (``core.topics``), a room's topic level
is at most 128 bytes when it uses only ``A-Z a-z 0-9 _ - . @`` and never more than 1,536, far
below MQTT's 65,535-byte topic limit. Metadata, copied into every alert, is bounded too.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StringConstraints, field_validator, model_validator

from streamguard.config.base import Section
from streamguard.config.ingest import SegmentSeconds
from streamguard.core.segment import STREAM_ID_PATTERN

__all__ = [
    "MAX_METADATA_ENTRIES",
    "MAX_METADATA_KEY",
    "MAX_METADATA_VALUE",
    "MAX_ROOM_LENGTH",
    "StreamConfig",
]

MAX_ROOM_LENGTH = 128
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)]


class StreamConfig(Section):
    id: str = Field(
        pattern=STREAM_ID_PATTERN.pattern,
        description="Stable stream id: 1-40 of A-Z a-z 0-9 _ - @ #.",
    )
    url: str = Field(min_length=1, description="Where the audio comes from (URL or file path).")
    room: str = Field(
        "",
        max_length=MAX_ROOM_LENGTH,
        description=(
            f"Room the stream belongs to; defaults to the stream id. At most {MAX_ROOM_LENGTH} "
            "printable characters (no control characters); it becomes the alert topic level "
            "{prefix}/v1/alerts/{room}, percent-encoded outside A-Z a-z 0-9 _ - . @."
        ),
    )
    profile: str = Field("default", description="Policy profile that judges this stream.")
    segment_seconds: SegmentSeconds | None = Field(
        None, description="Segment length for this stream; defaults to ingest.segment_seconds."
    )
    live: Literal["auto"] | StrictBool = Field(
        "auto",
        description=(
            "Whether the source is live (reopened with backoff when it ends) or a recording"
            " (read once, then the stream ends). auto: local files are recordings, RTMP and"
            " RTSP live, an HTTP resource with a Content-Length and no ICY headers (or a"
            " finished HLS playlist) a recording."
        ),
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_ENTRIES,
        description=(
            f"Free key/values copied into every alert: at most {MAX_METADATA_ENTRIES} entries, "
            f"keys of 1-{MAX_METADATA_KEY} characters, values of up to {MAX_METADATA_VALUE}."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _room_defaults_to_the_id(cls, data: Any) -> Any:
        # Filled in, not left empty: the API, the bus and the database all show the room.
        if isinstance(data, dict) and not data.get("room") and isinstance(data.get("id"), str):
            return {**data, "room": data["id"]}
        return data

    @field_validator("room")
    @classmethod
    def _printable_room(cls, room: str) -> str:
        for index, char in enumerate(room):
            if unicodedata.category(char).startswith("C"):
                raise ValueError(
                    f"character {index} is U+{ord(char):04X}, a control or unprintable "
                    "character; a room may hold printable characters only"
                )
        return room

    @property
    def room_id(self) -> str:
        return self.room or self.id
