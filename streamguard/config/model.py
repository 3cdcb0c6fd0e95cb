"""The whole config file, as one model."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from streamguard.config.alerts import EvidenceConfig
from streamguard.config.api import ApiConfig
from streamguard.config.base import Section
from streamguard.config.bus import MqttConfig
from streamguard.config.engine import EngineConfig, LocalEngineConfig
from streamguard.config.image import ImageEngineConfig, OpenNsfwConfig
from streamguard.config.ingest import IngestConfig
from streamguard.config.instance import InstanceConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.state import StateConfig
from streamguard.config.streams import StreamConfig
from streamguard.config.webhooks import WebhookConfig, check_webhooks

__all__ = ["Config"]


class Config(Section):
    instance: InstanceConfig = Field(
        default_factory=InstanceConfig, description="This daemon's name and state directory."
    )
    state: StateConfig = Field(
        default_factory=StateConfig,
        description="The state database: embedded SQLite, or a shared PostgreSQL (fleet mode).",
    )
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Reading sources.")
    engine: EngineConfig = Field(
        default_factory=LocalEngineConfig, description="The engine that judges segments."
    )
    image_engine: ImageEngineConfig = Field(
        default_factory=OpenNsfwConfig,
        description="The engine that judges video frames and images (default: offline open_nsfw).",
    )
    mqtt: MqttConfig | None = Field(
        None, description="The alert bus; without it alerts are printed as JSON lines."
    )
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig, description="Clips of risky segments and their retention."
    )
    profiles: dict[str, ProfileConfig] = Field(
        default_factory=lambda: {"default": ProfileConfig()},
        description="Policy profiles by name; streams pick one. `default` is always there "
        "(define [profiles.default] to change it).",
    )
    api: ApiConfig = Field(default_factory=ApiConfig, description="The control API of the daemon.")
    streams: list[StreamConfig] = Field(
        default_factory=list, description="Streams attached at start."
    )
    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="HTTP receivers of the alerts, fed from the outbox."
    )

    def state_path(self) -> Path:
        """``instance.state_dir``; a relative one lives under ``$STATE_DIRECTORY`` (systemd)."""
        configured = self.instance.state_dir
        base = os.environ.get("STATE_DIRECTORY")
        if configured.is_absolute() or not base:
            return configured
        return Path(base.split(":")[0]) / configured

    _webhooks_are_consistent = field_validator("webhooks")(check_webhooks)

    @field_validator("profiles")
    @classmethod
    def _default_stays(cls, profiles: dict[str, ProfileConfig]) -> dict[str, ProfileConfig]:
        # Streams that name no profile use `default`: adding another must not remove it.
        # [profiles.default] in the file replaces it.
        return profiles if "default" in profiles else {"default": ProfileConfig(), **profiles}

    def sqlite_path(self, state_dir: Path | None = None) -> Path:
        """The instance's SQLite file: a ``sqlite:`` ``state.url``'s path (a relative one
        under ``state_dir``, by default ``state_path()``), else ``state_dir/streamguard.db``
        (in fleet mode it keeps what is not shared)."""
        base = self.state_path() if state_dir is None else state_dir
        url = self.state.url
        if url is None or self.state.fleet:
            return base / "streamguard.db"
        path = Path(urlsplit(url).path)
        return path if path.is_absolute() else base / path

    @field_validator("streams")
    @classmethod
    def _streams_are_consistent(
        cls, streams: list[StreamConfig], info: ValidationInfo
    ) -> list[StreamConfig]:
        profiles = info.data.get("profiles", {})
        seen: set[str] = set()
        for index, stream in enumerate(streams):
            if stream.id in seen:
                raise ValueError(f"[{index}].id {stream.id!r} is used by another stream")
            seen.add(stream.id)
            if stream.profile not in profiles:
                raise ValueError(
                    f"[{index}].profile {stream.profile!r} of stream {stream.id!r} "
                    "is not defined in profiles"
                )
        return streams
