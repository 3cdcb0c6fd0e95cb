"""The MQTT bus alerts go to."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from streamguard.config.base import Section, secret_field
from streamguard.config.ingest import BackoffConfig

__all__ = ["MqttConfig", "MqttTlsConfig"]


def _existing_file(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(f"file does not exist: {path}")
    return path


class MqttTlsConfig(Section):
    """TLS to the broker; present means on. Certificates are verified unless insecure."""

    ca_file: Path | None = Field(
        None, description="CA bundle that signed the broker's certificate; none = system CAs."
    )
    cert_file: Path | None = Field(None, description="Client certificate (needs key_file).")
    key_file: Path | None = Field(None, description="Private key of cert_file.")
    insecure: bool = Field(
        False,
        description="Skip verifying the broker's certificate and host name. Never in production.",
    )

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _exists(cls, path: Path | None) -> Path | None:
        return _existing_file(path)

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsConfig:
        if self.cert_file is not None and self.key_file is None:
            raise ValueError("key_file is required when cert_file is set")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("cert_file is required when key_file is set")
        return self


class MqttConfig(Section):
    """Broker connection, topics and the outbox's delivery rules."""

    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 usual with TLS).")
    username: str | None = Field(None, description="MQTT user name, if the broker wants one.")
    password: SecretStr | None = secret_field(
        "mqtt-password", "STREAMGUARD_MQTT_PASSWORD", "MQTT password."
    )
    tls: MqttTlsConfig | None = Field(None, description="TLS options; absent = plain TCP.")
    client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_\-.]{1,64}$",
        description="MQTT client id; defaults to streamguard-<instance id>.",
    )
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        "auto",
        description="MQTT version: auto = 5, falling back to 3.1.1 if the broker refuses 5.",
    )
    topic_prefix: str = Field(
        "streamguard", description="First topic level(s); no wildcards, spaces or empty levels."
    )
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds.")
    timeout: float = Field(
        10.0, gt=0, description="Seconds to connect, and to wait for a PUBACK, before giving up."
    )
    message_expiry_seconds: int | None = Field(
        None, ge=1, description="MQTT 5 message expiry of alerts queued for offline consumers."
    )
    stale_after_seconds: float = Field(
        300.0,
        gt=0,
        description="Alerts published later than this after detection are marked stale"
        " (and still delivered).",
    )
    inflight: int = Field(
        100,
        ge=1,
        le=1000,
        description="QoS 1 messages sent before waiting for their PUBACKs (a window; after a"
        " lost connection up to this many may arrive twice).",
    )
    shutdown_drain_seconds: float = Field(
        5.0, ge=0, description="On shutdown, seconds to keep sending the backlog; the rest waits."
    )
    reconnect: BackoffConfig = Field(
        default_factory=BackoffConfig, description="Delays between connection attempts."
    )

    @field_validator("topic_prefix")
    @classmethod
    def _valid_prefix(cls, prefix: str) -> str:
        if not prefix:
            raise ValueError("must not be empty")
        if "+" in prefix or "#" in prefix:
            raise ValueError(f"{prefix!r} contains an MQTT wildcard ('+' or '#')")
        if prefix.startswith("$"):
            raise ValueError(f"{prefix!r} starts with '$' (reserved for broker topics)")
        if any(c.isspace() or c == "\0" for c in prefix):
            raise ValueError(f"{prefix!r} contains white space or NUL")
        if "" in prefix.split("/"):
            raise ValueError(f"{prefix!r} has an empty level (leading, trailing or double '/')")
        return prefix
