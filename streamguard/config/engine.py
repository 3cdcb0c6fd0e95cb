"""Which engine judges segments, and how: chosen by ``type``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from streamguard.config.base import Section, secret_field

__all__ = ["AmsEngineConfig", "EngineConfig", "LocalEngineConfig"]


class LocalEngineConfig(Section):
    type: Literal["local"] = "local"
    model: str = Field(
        "tiny.en",
        description=(
            "Whisper model: 'tiny.en' (shipped offline), another faster-whisper model name "
            "(needs internet once), or a path to a CTranslate2 model directory."
        ),
    )
    libraries: list[Path] = Field(
        default_factory=list,
        description="Keyword library files (TOML). Empty = the shipped English default library.",
    )
    workers: int = Field(1, ge=1, le=64, description="Segments recognised at the same time.")
    backlog: int = Field(
        32, ge=1, description="Segments that may wait for recognition before new ones are skipped."
    )


class AmsEngineConfig(Section):
    type: Literal["ams"] = "ams"
    endpoint: str = Field(
        "https://ams.tencentcloudapi.com",
        description="AMS API base URL (the emulator's, or ams.intl.tencentcloudapi.com).",
    )
    region: str = Field("", description="X-TC-Region; AMS does not need one.")
    secret_id: SecretStr | None = secret_field(
        "tencentcloud-secret-id", "TENCENTCLOUD_SECRET_ID", "Tencent Cloud SecretId."
    )
    secret_key: SecretStr | None = secret_field(
        "tencentcloud-secret-key", "TENCENTCLOUD_SECRET_KEY", "Tencent Cloud SecretKey."
    )
    token: SecretStr | None = secret_field(
        "tencentcloud-token", "TENCENTCLOUD_TOKEN", "Temporary (STS) session token, optional."
    )
    requests_per_second: float = Field(
        20.0, gt=0, description="Client-side rate limit across all AMS calls."
    )


EngineConfig = Annotated[LocalEngineConfig | AmsEngineConfig, Field(discriminator="type")]
