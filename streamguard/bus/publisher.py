"""The publisher: drains the outbox to MQTT, and keeps retained status current.

One connection at a time, each with a new ``aiomqtt.Client`` (reusing a client after an
unexpected disconnect misbehaves). Messages go out QoS 1 in outbox order, up to ``inflight``
at once, and are removed only after their PUBACK. A failed connection or publish leads to a
reconnect after a capped, jittered backoff; the backlog then replays in order. A publish
that raised may still have reached the broker: duplicates carry the same id.

MQTT 5 is used when the broker speaks it (content type, message expiry, user properties);
with ``protocol = "auto"`` a broker that refuses version 5 is spoken to in 3.1.1.

While the outbox's database is unreachable (fleet mode's shared PostgreSQL away) the
publisher stays connected and waits, retrying with the same backoff, in the state
``waiting_for_outbox`` (health reports it): an outage of the database is no crash of the loop.

No message may stop the outbox: one whose publish fails on its own is a poison message,
moved to the dead letters with a health event while the rest goes on (``bus.poison``).

A publish the broker refuses (an MQTT 5 PUBACK with a failure reason code, e.g. 0x87 not
authorized) is not delivered: it stays in the outbox and its topic is held back and retried
with backoff while the rest goes on (``bus.refusals``); one refused for itself (0x95, 0x99)
``REFUSAL_ATTEMPTS`` times in a row is dead-lettered like a poison message.

Each topic keeps its order even when the broker refuses some publishes: within a batch, a
message goes only once the one before it on the same topic was acknowledged (the topics of
a batch go concurrently, up to ``inflight`` messages in all). A refused message therefore
has nothing of its topic published behind it. The cost: one topic's messages go one round
trip at a time (see docs/benchmarks.md, "Alerts").
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from enum import StrEnum

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from streamguard.bus.mqtt import mqtt_client
from streamguard.bus.poison import PoisonGuard
from streamguard.bus.refusals import REFUSAL_ATTEMPTS, PubackWatch, PublishRefused, RefusedTopics
from streamguard.config.bus import MqttConfig
from streamguard.core.backoff import Backoff
from streamguard.core.status import instance_payload
from streamguard.core.topics import Topics
from streamguard.moderation.alert import stamp_published
from streamguard.state.db import StorageUnavailable
from streamguard.state.outbox import MessageKind, OutboxMessage, OutboxStore

__all__ = ["Publisher", "PublisherState"]

log = logging.getLogger(__name__)

# CONNACK codes meaning "I do not speak this protocol version" (3.1.1 and 5).
_UNSUPPORTED_PROTOCOL = {1, 132}


class PublisherState(StrEnum):
    """The bus connection as health and metrics report it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    WAITING_FOR_OUTBOX = "waiting_for_outbox"
    """Connected, but the outbox's database is unreachable: publishing waits for it."""
    STOPPED = "stopped"


class Publisher:
    """Owns the bus connection; ``run`` until ``request_stop``, then returns."""

    def __init__(
        self,
        config: MqttConfig,
        outbox: OutboxStore,
        instance_id: str,
        *,
        on_acked: Callable[[Sequence[OutboxMessage]], None] | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.topic_prefix)
        self.instance_id = instance_id
        self.client_id = config.client_id or f"streamguard-{instance_id}"
        self._outbox = outbox
        self._on_acked = on_acked
        v311, v5 = aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5
        self._protocol = v311 if config.protocol == "3.1.1" else v5
        self._backoff = Backoff.of(config.reconnect)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._drain_deadline = 0.0
        self._retained: dict[str, str] = {}
        self._retained_dirty: set[str] = set()
        self._state = PublisherState.CONNECTING
        self._state_changed = asyncio.Event()
        self.last_error: str | None = None
        self.connects_total = 0
        self.published_total = 0
        self._outbox_failures = 0
        self._poison = PoisonGuard(outbox, self.topics, instance_id)
        self.refusals = RefusedTopics(self._backoff)
        """Topics the broker refused publishes on, held back (health and metrics read it)."""

    @property
    def state(self) -> PublisherState:
        """Whether the bus is connected now."""
        return self._state

    def _set_state(self, state: PublisherState) -> None:
        self._state = state
        self._state_changed.set()

    async def wait_state(self, *states: PublisherState) -> PublisherState:
        """Return once the publisher is in one of ``states``."""
        while self._state not in states:
            self._state_changed.clear()
            await self._state_changed.wait()
        return self._state

    @property
    def protocol(self) -> str:
        """The MQTT version in use (or tried next)."""
        return "5" if self._protocol is aiomqtt.ProtocolVersion.V5 else "3.1.1"

    def wake(self) -> None:
        """Tell the publisher the outbox has something new."""
        self._wake.set()

    def set_retained(self, topic: str, payload: str) -> None:
        """Publish ``payload`` retained on ``topic`` now or at the next connection."""
        self._retained[topic] = payload
        self._retained_dirty.add(topic)
        self._wake.set()

    def request_stop(self) -> None:
        """Send the backlog for at most ``shutdown_drain_seconds`` more, then stop."""
        now = asyncio.get_running_loop().time()
        self._drain_deadline = now + self.config.shutdown_drain_seconds
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Connect, drain, reconnect on failure; return after ``request_stop``."""
        failures = 0
        while not self._stopping.is_set():
            error: str | None = None
            fall_back = False
            try:
                async with self._client() as client:
                    failures = 0
                    self.connects_total += 1
                    self._set_state(PublisherState.CONNECTED)
                    self.last_error = None
                    log.info("bus connected (MQTT %s)", self.protocol)
                    await self._session(client)
            except* MqttConnectError as group:
                error = str(group.exceptions[0])
                fall_back = self._refused_protocol(group.exceptions[0])
            except* aiomqtt.MqttError as group:
                error = str(group.exceptions[0]) or type(group.exceptions[0]).__name__
            if error is None:
                break  # the session ended because we are stopping
            await self._poison.connection_lost(error)
            if fall_back:
                log.warning("broker refused MQTT 5, falling back to 3.1.1: %s", error)
                self._protocol = aiomqtt.ProtocolVersion.V311
                continue
            failures += 1
            self._set_state(PublisherState.RECONNECTING)
            self.last_error = error
            delay = self._backoff.delay(failures)
            log.warning("bus unavailable (%s); retrying in %.1f s", error, delay)
            try:
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            except TimeoutError:
                pass
        self._set_state(PublisherState.STOPPED)

    def _refused_protocol(self, exc: BaseException) -> bool:
        if self.config.protocol != "auto" or self._protocol is aiomqtt.ProtocolVersion.V311:
            return False
        rc = exc.rc if isinstance(exc, MqttConnectError) else None
        code = rc.value if isinstance(rc, ReasonCode) else rc
        return code in _UNSUPPORTED_PROTOCOL

    def _client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(
            topic=self.topics.instance(self.instance_id),
            payload=json.dumps(instance_payload(self.instance_id, "offline", None)),
            qos=1,
            retain=True,
        )
        client = mqtt_client(
            self.config, identifier=self.client_id, protocol=self._protocol, will=will
        )
        # Up to a full window of publishes awaits its PUBACK by design; not worth a warning.
        client.pending_calls_threshold = self.config.inflight + 10
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        self._retained_dirty = set(self._retained)
        self.refusals.retry_all(asyncio.get_running_loop().time())
        acks = PubackWatch(client)
        await self._publish_instance(acks, "online")
        async with asyncio.TaskGroup() as group:
            watch = group.create_task(self._watch(client), name="bus.watch")
            await self._drain(acks)
            await self._publish_instance(acks, "offline")
            watch.cancel()

    async def _watch(self, client: aiomqtt.Client) -> None:
        # We subscribe to nothing: the iterator only ends, raising MqttError, when the
        # connection drops, which tells an idle publisher to reconnect.
        async for _ in client.messages:
            pass

    async def _drain(self, client: PubackWatch) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            await self._publish_retained(client)
            stopping = self._stopping.is_set()
            if stopping and loop.time() >= self._drain_deadline:
                return
            try:
                batch = self._poison.window(await self._next_batch())
                if batch:
                    await self._publish_batch(client, batch)
            except StorageUnavailable as exc:
                await self._outbox_away(exc)
                continue
            self._outbox_back()
            if batch:
                continue
            if stopping:
                return
            due = self.refusals.next_due()
            with suppress(TimeoutError):  # the next try of a refused topic
                async with asyncio.timeout_at(due):
                    await self._wake.wait()

    async def _next_batch(self) -> list[OutboxMessage]:
        """The next messages to send, in order: the outbox read leaves out the held topics
        not due for a try (however many messages they hold), a due one sends its first."""
        now = asyncio.get_running_loop().time()
        held = self.refusals.held_back(now)
        messages = await self._outbox.peek(self.config.inflight, skip_topics=held)
        return self.refusals.window(messages, now, keep=self._retained)

    async def _outbox_away(self, exc: StorageUnavailable) -> None:
        """Wait a backoff step (less when stopping) before reading the outbox again."""
        self._outbox_failures += 1
        if self._state is not PublisherState.WAITING_FOR_OUTBOX:
            log.warning("outbox unreachable, publishing waits for it: %s", exc)
            self._set_state(PublisherState.WAITING_FOR_OUTBOX)
        self.last_error = f"outbox unreachable: {exc}"
        delay = self._backoff.delay(self._outbox_failures)
        if self._stopping.is_set():
            left = self._drain_deadline - asyncio.get_running_loop().time()
            await asyncio.sleep(max(0.0, min(delay, left)))
            return
        try:
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        except TimeoutError:
            pass

    def _outbox_back(self) -> None:
        self._outbox_failures = 0
        if self._state is PublisherState.WAITING_FOR_OUTBOX:
            log.info("outbox reachable again, publishing resumes")
            self._set_state(PublisherState.CONNECTED)
            self.last_error = None

    async def _publish_instance(self, client: PubackWatch, state: str) -> None:
        payload = instance_payload(self.instance_id, state, datetime.now(UTC))
        try:
            await client.publish(
                self.topics.instance(self.instance_id),
                json.dumps(payload),
                qos=1,
                retain=True,
                timeout=self.config.timeout,
            )
        except PublishRefused as exc:
            log.error("instance status %s not published: %s", state, exc)

    async def _publish_retained(self, client: PubackWatch) -> None:
        now = asyncio.get_running_loop().time()
        self._retained_dirty |= {t for t in self._retained if self.refusals.is_due(t, now)}
        while self._retained_dirty:
            topic = self._retained_dirty.pop()
            try:
                await client.publish(
                    topic, self._retained[topic], qos=1, retain=True, timeout=self.config.timeout
                )
                self.refusals.delivered([topic])
            except aiomqtt.MqttError:
                self._retained_dirty.add(topic)
                raise
            except PublishRefused as exc:  # kept, and tried again like a refused alert
                self.refusals.refused(topic, "retained status", exc.refusal, now)
            except Exception as exc:  # a status that can never be published: drop it
                log.error("retained status on %.200s cannot be published, dropped: %r", topic, exc)
                del self._retained[topic]

    async def _publish_batch(self, client: PubackWatch, batch: list[OutboxMessage]) -> None:
        now = datetime.now(UTC)

        async def publish(message: OutboxMessage) -> None:
            await client.publish(
                message.topic,
                self._payload(message, now),
                qos=1,
                properties=self._properties(message),
                timeout=self.config.timeout,
            )

        failures = await publish_in_topic_order(batch, publish)
        results = list(zip(batch, failures, strict=True))
        acked = [m for m, failure in results if failure is None]
        self.refusals.delivered(m.topic for m in acked)
        await self._outbox.remove([m.seq for m in acked])
        self.published_total += len(acked)
        if self._on_acked is not None and acked:
            self._on_acked(acked)
        lost = [(m, f) for m, f in results if isinstance(f, aiomqtt.MqttError | OSError)]
        at = asyncio.get_running_loop().time()
        for message, failure in results:
            if isinstance(failure, PublishRefused):  # not delivered: stays in the outbox
                await _refused(self.refusals, self._poison, message, failure, at)
            elif failure is not None and not isinstance(
                failure, aiomqtt.MqttError | OSError | NotSent
            ):
                await self._poison.dead_letter(message, f"{type(failure).__name__}: {failure}")
        self._poison.settled(acked, [m for m, _ in lost])
        if lost:
            error = lost[0][1]
            if isinstance(error, aiomqtt.MqttError):
                raise error
            raise aiomqtt.MqttError(f"{type(error).__name__}: {error}") from error

    def _payload(self, message: OutboxMessage, now: datetime) -> str:
        if message.kind is not MessageKind.ALERT:
            return message.payload
        stamped = stamp_published(json.loads(message.payload), now, self.config.stale_after_seconds)
        return json.dumps(stamped, ensure_ascii=False)

    def _properties(self, message: OutboxMessage) -> Properties | None:
        if self._protocol is not aiomqtt.ProtocolVersion.V5:
            return None
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ContentType = "application/json"
        if message.kind is MessageKind.ALERT and self.config.message_expiry_seconds:
            properties.MessageExpiryInterval = self.config.message_expiry_seconds
        properties.UserProperty = ("message_id", message.message_id)
        properties.UserProperty = ("kind", message.kind.value)
        return properties


async def _refused(
    refusals: RefusedTopics,
    poison: PoisonGuard,
    message: OutboxMessage,
    refused: PublishRefused,
    at: float,
) -> None:
    """Hold the message's topic; dead-letter a message refused for itself again and again,
    releasing the topic."""
    what = f"{message.kind.value} {message.message_id}"
    if refusals.refused(message.topic, what, refused.refusal, at, seq=message.seq):
        await poison.dead_letter(
            message, f"the broker refused it {REFUSAL_ATTEMPTS} times in a row: {refused.refusal}"
        )
        refusals.release(message.topic)


class NotSent(Exception):
    """Not published: the message before it on its topic was not delivered (it waits in the
    outbox for a later batch)."""


async def publish_in_topic_order(
    batch: Sequence[OutboxMessage], publish: Callable[[OutboxMessage], Awaitable[None]]
) -> list[Exception | None]:
    """``publish`` each message of ``batch``, one topic's messages one after another (the
    next once the one before was acknowledged), the topics concurrently; what each raised,
    None when delivered, ``NotSent`` when an earlier one of its topic failed."""
    failures: list[Exception | None] = [NotSent() for _ in batch]
    topics: dict[str, list[int]] = {}
    for index, message in enumerate(batch):
        topics.setdefault(message.topic, []).append(index)

    async def in_order(indexes: list[int]) -> None:
        for index in indexes:
            try:
                await publish(batch[index])
            except Exception as exc:  # sorted by the caller: lost, refused, or poison
                failures[index] = exc
                return  # the rest of the topic waits: nothing goes out past it
            failures[index] = None

    async with asyncio.TaskGroup() as group:
        for indexes in topics.values():
            first = batch[indexes[0]]
            group.create_task(in_order(indexes), name=f"outbox.publish[{first.seq}]")
    return failures
