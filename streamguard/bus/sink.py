"""Where alerts go: the two implementations of ``moderation.sink.AlertSink``.

``MqttAlerts`` writes every alert and health event to the outbox and runs the publisher that
drains it to MQTT; ``JsonLinesAlerts`` prints them as JSON lines when no broker is configured
(``streamguard moderate``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TextIO

from streamguard.bus.publisher import Publisher, PublisherState
from streamguard.config.bus import MqttConfig
from streamguard.core.status import InstanceEvent, StreamEvent, StreamEventKind, StreamStatus
from streamguard.core.supervisor import Loop, Supervisor, shared_or_own
from streamguard.core.topics import Topics
from streamguard.moderation.alert import Alert, stamp_published
from streamguard.state.db import Database
from streamguard.state.outbox import MessageKind, Outbox, OutboxMessage, OutboxStore
from streamguard.state.spool import DIRECT, Writes

__all__ = ["AlertsRaised", "BusHealth", "JsonLinesAlerts", "MqttAlerts"]

log = logging.getLogger(__name__)


class AlertsRaised:
    """Counts the alerts a sink was given by (label, risk level), and writes one INFO line
    per alert and per segment failed, so the journal tells what happened."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def alert(self, alert: Alert) -> None:
        """Count ``alert`` and log it."""
        risk = alert.payload.get("risk") or {}
        label, level = str(risk.get("label", "")), str(risk.get("level", ""))
        self.counts[label, level] += 1
        event = (alert.payload.get("incident") or {}).get("event", "")
        fields = {
            "alert_id": alert.alert_id,
            "stream_id": alert.stream_id,
            "room_id": alert.room_id,
            "label": label,
            "risk": level,
            "event": event,
        }
        message = "alert raised: %s %s %s in room %s"
        log.info(message, event, label, level, alert.room_id, extra=fields)

    def event(self, event: StreamEvent) -> None:
        """Log a segment that failed to be judged (other events have their own lines)."""
        if event.kind is StreamEventKind.SEGMENT_FAILED:
            log.info(
                "segment failed: %s",
                event.detail,
                extra={"stream_id": event.stream_id, "segment_id": event.segment_id},
            )


@dataclass(frozen=True, slots=True)
class BusHealth:
    """What the daemon's health and metrics report about the bus."""

    ok: bool
    state: PublisherState
    backlog: int
    oldest_age: float | None
    last_error: str | None
    reason: str


class MqttAlerts:
    """Outbox + publisher as one async context manager; ``emit`` returns once stored — or,
    with a ``Spool`` as ``writes`` and a full disk, once kept in memory to be stored (and
    then published) when the disk takes writes again.

    On exit the backlog is sent for at most ``shutdown_drain_seconds``; what is left waits
    in the database for the next start.
    """

    def __init__(
        self,
        config: MqttConfig,
        db: Database,
        instance_id: str,
        *,
        on_acked: Callable[[Sequence[OutboxMessage]], None] | None = None,
        supervisor: Supervisor | None = None,
        writes: Writes = DIRECT,
        outbox: OutboxStore | None = None,
    ) -> None:
        self.config = config
        self._writes = writes
        self.topics = Topics(config.topic_prefix)
        self.outbox: OutboxStore = outbox or Outbox(db)
        """The SQLite outbox in ``db``, unless another is given (fleet mode's shared one)."""
        self.publisher = Publisher(config, self.outbox, instance_id, on_acked=on_acked)
        self._shared = supervisor
        self._stack = AsyncExitStack()
        self._loop: Loop | None = None
        self._also_wake: list[Callable[[], None]] = []
        self.raised = AlertsRaised()

    def also_wake(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever a message was stored (the webhooks read the same outbox)."""
        self._also_wake.append(wake)

    async def __aenter__(self) -> Self:
        await self.outbox.open()
        async with AsyncExitStack() as stack:
            supervisor = await shared_or_own(self._shared, stack)
            self._loop = supervisor.start("outbox.publisher", self.publisher.run)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = self._loop
        if loop is not None and not loop.task.done():
            self.publisher.request_stop()
            # A connect or publish in progress is bounded by the client timeout.
            limit = self.config.shutdown_drain_seconds + 2 * self.config.timeout
            with suppress(TimeoutError):
                async with asyncio.timeout(limit):
                    await loop.finished()
            await loop.stop()
        await self._stack.aclose()
        await self.outbox.settle()  # acknowledged messages a full disk kept from deleting

    async def emit(self, alert: Alert) -> None:
        payload = json.dumps(alert.to_json(), ensure_ascii=False)
        topic = self.topics.alerts(alert.room_id)
        await self._store(MessageKind.ALERT, alert.alert_id, topic, payload, alert.stream_id)
        self.raised.alert(alert)

    async def event(self, event: StreamEvent) -> None:
        self.raised.event(event)
        payload = json.dumps(event.to_json(), ensure_ascii=False)
        topic = self.topics.stream_events(event.stream_id)
        await self._store(MessageKind.EVENT, event.event_id, topic, payload)

    async def instance_event(self, event: InstanceEvent) -> None:
        """Deliver a health event of this instance (a loop restarted) through the outbox."""
        payload = json.dumps(event.to_json(), ensure_ascii=False)
        topic = self.topics.instance_events(event.instance_id)
        await self._store(MessageKind.EVENT, event.event_id, topic, payload)

    async def _store(
        self,
        kind: MessageKind,
        message_id: str,
        topic: str,
        payload: str,
        stream_id: str | None = None,
    ) -> None:
        async def add() -> None:
            await self.outbox.add(kind, message_id, topic, payload, stream_id)
            self.publisher.wake()
            for wake in self._also_wake:
                wake()

        await self._writes.write(kind.value, add)

    async def status(self, status: StreamStatus) -> None:
        payload = json.dumps(status.to_json(), ensure_ascii=False)
        self.publisher.set_retained(self.topics.stream_status(status.stream_id), payload)

    def health(self) -> BusHealth:
        """Degraded while disconnected, while the broker refuses publishes on some topic
        (they wait in the outbox) or while the oldest waiting alert is stale."""
        age = self.outbox.oldest_age()
        state = self.publisher.state
        held = self.publisher.refusals.held
        if state is not PublisherState.CONNECTED:
            reason = f"bus {state.value}: {self.publisher.last_error or 'not connected yet'}"
            ok = False
        elif held:
            some = "; ".join(f"{r} on {t[:200]}" for t, r in list(held.items())[:3])
            reason = (
                f"broker refuses publishes on {len(held)} topic(s), kept and retried "
                f"(outbox backlog {self.outbox.depth}): {some}"
            )
            ok = False
        elif age is not None and age > self.config.stale_after_seconds:
            reason = f"backlog of {self.outbox.depth}, oldest waiting {age:.0f} s"
            ok = False
        else:
            reason = "connected"
            ok = True
        return BusHealth(ok, state, self.outbox.depth, age, self.publisher.last_error, reason)


class JsonLinesAlerts:
    """Prints alerts as JSON lines (stamped as published now) and events/status to ``log``."""

    def __init__(self, out: TextIO | None = None, log: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._log = log or sys.stderr
        self.raised = AlertsRaised()

    async def emit(self, alert: Alert) -> None:
        stamped = stamp_published(alert.to_json(), datetime.now(UTC), math.inf)
        self._write(self._out, stamped)
        self.raised.alert(alert)

    async def event(self, event: StreamEvent) -> None:
        self.raised.event(event)
        self._write(self._log, {"event": event.to_json()})

    async def instance_event(self, event: InstanceEvent) -> None:
        """Print a health event of this instance to ``log``."""
        self._write(self._log, {"event": event.to_json()})

    async def status(self, status: StreamStatus) -> None:
        self._write(self._log, {"status": status.to_json()})

    @staticmethod
    def _write(stream: TextIO, data: object) -> None:
        stream.write(json.dumps(data, ensure_ascii=False) + "\n")
        stream.flush()
