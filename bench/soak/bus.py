"""The alert consumer of the soak: a persistent MQTT session at QoS 1, so alerts published
while the broker is away or restarting are queued for it and delivered when it is back."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import aiomqtt

__all__ = ["Consumer"]


class Consumer:
    """Collects every alert (by ``alert_id``, each delivery counted) and instance event."""

    def __init__(self, port: int, prefix: str, client_id: str) -> None:
        self.port = port
        self.filters = [f"{prefix}/v1/alerts/#", f"{prefix}/v1/instances/+/events"]
        self.client_id = client_id
        self.deliveries: Counter[str] = Counter()
        self.alerts: dict[str, dict[str, Any]] = {}
        self.events: Counter[str] = Counter()
        self.loop_restarts: Counter[str] = Counter()
        """Background loops the daemon restarted after they raised, by loop and error."""
        self.reconnects = 0
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Consume until cancelled, reconnecting (same session) whenever the broker goes."""
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.client_id,
                    protocol=aiomqtt.ProtocolVersion.V311,
                    clean_session=False,
                    timeout=5,
                ) as client:
                    for topic_filter in self.filters:
                        await client.subscribe(topic_filter, qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        self._take(str(message.topic), message.payload)
            except aiomqtt.MqttError:
                if self.connected.is_set():
                    self.reconnects += 1
                self.connected.clear()
                await asyncio.sleep(0.5)

    def _take(self, topic: str, payload: Any) -> None:
        document = json.loads(payload)
        if "/alerts/" in topic:
            self.deliveries[document["alert_id"]] += 1
            self.alerts.setdefault(document["alert_id"], document)
        else:
            self.events[str(document.get("kind"))] += 1
            if document.get("kind") == "loop_restarted":
                detail = str(document.get("detail"))[:120]
                self.loop_restarts[f"{document.get('loop')}: {detail}"] += 1
