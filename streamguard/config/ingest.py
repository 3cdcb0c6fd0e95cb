"""How sources are read, cut and encoded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from streamguard.config.base import Section
from streamguard.config.frames import FramesConfig

__all__ = ["BackoffConfig", "EncodingConfig", "IngestConfig", "SegmentSeconds"]

SegmentSeconds = Literal[15, 30, 60]

Protocol = Literal["http", "https", "hls", "rtmp", "rtmps", "rtsp"]
NETWORK_PROTOCOLS: tuple[Protocol, ...] = ("http", "https", "hls", "rtmp", "rtmps", "rtsp")


class BackoffConfig(Section):
    initial: float = Field(1.0, gt=0, description="First reconnect delay, seconds.")
    maximum: float = Field(30.0, gt=0, description="Reconnect delays never exceed this, seconds.")
    multiplier: float = Field(2.0, ge=1, description="Each failed attempt multiplies the delay.")
    jitter: float = Field(
        0.2, ge=0, le=1, description="Random share added or removed from each delay (0.2 = ±20%)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.maximum < self.initial:
            raise ValueError("maximum must be >= initial")
        return self


class EncodingConfig(Section):
    format: Literal["wav", "mp3", "m4a"] = Field(
        "mp3", description="Container/codec segments are encoded to before moderation."
    )
    bitrate: int = Field(
        32_000, ge=8_000, le=320_000, description="Bits per second for mp3 and m4a (AAC)."
    )


class IngestConfig(Section):
    allowed_protocols: list[Protocol] = Field(
        default_factory=lambda: list(NETWORK_PROTOCOLS),
        description="URL schemes a stream may use. Local files need allow_local_files too.",
    )
    allow_local_files: bool = Field(
        True, description="Whether a stream may be a local file path (or file: URL)."
    )
    open_timeout: float = Field(10.0, gt=0, description="Seconds to open and probe a source.")
    read_timeout: float = Field(10.0, gt=0, description="Seconds one network read may block.")
    stall_timeout: float = Field(
        15.0, gt=0, description="Connected but no decoded audio for this long means reconnect."
    )
    segment_seconds: SegmentSeconds = Field(
        30, description="Default segment length (15, 30 or 60 s); streams may override it."
    )
    backoff: BackoffConfig = Field(
        default_factory=BackoffConfig, description="Reconnect delays of a live source."
    )
    max_reconnect_attempts: int = Field(
        0,
        ge=0,
        description=(
            "Consecutive attempts to reopen a live source that bring no audio before it is "
            "given up as failed; 0 keeps trying for as long as the stream is attached."
        ),
    )
    queue_chunks: int = Field(
        8,
        ge=1,
        description=(
            "Decoded chunks (about 1 s each) buffered between a source's reader thread and the "
            "pipeline; when full, the reader waits instead of dropping audio."
        ),
    )
    silent_minutes: float = Field(
        10.0,
        gt=0,
        description="A stream with no speech for this long is reported silent (status and event).",
    )
    encoding: EncodingConfig = Field(
        default_factory=EncodingConfig, description="How segments are encoded."
    )
    frames: FramesConfig = Field(
        default_factory=FramesConfig,
        description="How frames are sampled from streams that carry video.",
    )
