"""The MQTT bus alerts go to."""

from __future__ import annotations

from pydantic import Field, SecretStr

from streamguard.config.base import Section, secret_field

__all__ = ["MqttConfig"]


class MqttConfig(Section):
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    username: str | None = Field(None, description="MQTT user name, if the broker wants one.")
    password: SecretStr | None = secret_field(
        "mqtt-password", "STREAMGUARD_MQTT_PASSWORD", "MQTT password."
    )
    topic_prefix: str = Field(
        "streamguard",
        pattern=r"^[^#+\s]+$",
        description="First topic level(s); no wildcards or spaces.",
    )
