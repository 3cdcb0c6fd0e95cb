"""The MQTT topics streamguard publishes to, all under ``{prefix}/v1/``.

Room, stream and instance ids become single topic levels: every character outside
``A-Z a-z 0-9 _ - . @`` is percent-encoded, so ``#``, ``+`` and ``/`` in an id can never act
as wildcards or split a level, and two different ids never share a topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Topics", "topic_level"]

_SAFE = re.compile(r"[A-Za-z0-9_\-.@]")


def topic_level(value: str) -> str:
    """``value`` as one safe topic level (percent-encoded UTF-8; ``%`` for an empty id)."""
    if not value:
        return "%"
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        for ch in value
    )


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names for one configured prefix (validated by ``MqttConfig``)."""

    prefix: str

    @property
    def root(self) -> str:
        return f"{self.prefix}/v1"

    def alerts(self, room_id: str) -> str:
        """Alerts of a room (QoS 1, not retained)."""
        return f"{self.root}/alerts/{topic_level(room_id)}"

    def all_alerts(self) -> str:
        """Filter matching the alerts of every room."""
        return f"{self.root}/alerts/+"

    def stream_status(self, stream_id: str) -> str:
        """Retained status of a stream: online, reconnecting, offline or silent."""
        return f"{self.root}/streams/{topic_level(stream_id)}/status"

    def stream_events(self, stream_id: str) -> str:
        """Health events of a stream (down, restored, silent, segment failed or skipped)."""
        return f"{self.root}/events/{topic_level(stream_id)}"

    def all_events(self) -> str:
        """Filter matching every stream's health events."""
        return f"{self.root}/events/+"

    def instance(self, instance_id: str) -> str:
        """Retained availability of one daemon instance, with a Last Will of offline."""
        return f"{self.root}/instances/{topic_level(instance_id)}"

    def instance_events(self, instance_id: str) -> str:
        """Health events of one instance (a background loop restarted), not retained."""
        return f"{self.root}/instances/{topic_level(instance_id)}/events"
