"""A real MQTT consumer for the tests: subscribes, collects, reconnects like a real one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import aiomqtt

__all__ = ["Received", "Subscriber"]


class Received:
    """One message as the consumer saw it."""

    def __init__(self, message: aiomqtt.Message) -> None:
        self.topic = str(message.topic)
        self.retain = message.retain
        self.json: dict[str, Any] = json.loads(message.payload)
        self.user_properties: dict[str, str] = dict(
            getattr(message.properties, "UserProperty", None) or []
        )


class Subscriber:
    """Consumes ``filters`` at QoS 1 on a persistent session (3.1.1, clean_session off), so
    messages published while it is away — the broker restarting — are queued for it."""

    def __init__(
        self,
        port: int,
        filters: list[str],
        client_id: str,
        *,
        protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V311,
    ) -> None:
        self.port = port
        self.filters = filters
        self.client_id = client_id
        self.protocol = protocol
        self.received: list[Received] = []
        self.connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._group = asyncio.TaskGroup()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        self._task = self._group.create_task(self._run(), name=f"subscriber[{self.client_id}]")
        async with asyncio.timeout(10):
            await self.connected.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    async def _run(self) -> None:
        persistent = self.protocol is aiomqtt.ProtocolVersion.V311
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.client_id,
                    protocol=self.protocol,
                    clean_session=False if persistent else None,
                    timeout=5,
                ) as client:
                    for topic_filter in self.filters:
                        await client.subscribe(topic_filter, qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        self.received.append(Received(message))
                        self._changed.set()
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.2)

    async def wait_until(
        self, done: Callable[[list[Received]], bool], seconds: float = 30.0
    ) -> list[Received]:
        """Wait until ``done(received)``; fail after ``seconds`` (a hang, not a speed check)."""
        async with asyncio.timeout(seconds):
            while not done(self.received):
                self._changed.clear()
                await self._changed.wait()
        return self.received
