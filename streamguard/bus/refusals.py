"""Publishes the broker refused: an MQTT 5 PUBACK whose reason code is a failure (0x80 or
more: 0x87 not authorized by an ACL, 0x97 quota exceeded, 0x99 payload format invalid, ...).

aiomqtt 2.x awaits a QoS 1 publish's PUBACK but ignores its reason code: ``publish`` returns
as if the message were delivered. ``PubackWatch`` reads the code from paho's ``on_publish``
(``CallbackAPIVersion.VERSION2`` passes ``reason_code`` and ``properties``) and makes
``publish`` raise ``PublishRefused``; aiomqtt offers no public hook, so the one private
step, reaching its paho client, is ``paho_client`` alone. MQTT 3.1.1 has no reason codes:
a broker that refuses a 3.1.1 publish acknowledges it all the same (mosquitto does) or
drops the connection, and the client cannot tell the first from a delivery.

A refused message is not delivered: it stays in the outbox. ``RefusedTopics`` holds its topic
back (every message to it, so each topic keeps its order) until a try, on the reconnect
backoff, of its first message alone; the rest of the outbox goes on, read past the held
topics in the outbox's query itself (``held_back``), so a held backlog of any size costs no
reads. A refusal that only a change of the broker's configuration can lift (``PERMANENT``:
the topic is to blame) is logged as an error and retried at the schedule's cap, never
dropped; the others (quota exceeded, unspecified) as a warning, sooner. A refusal that
concerns the message itself (``MESSAGE_REFUSALS``: payload format invalid, packet too large)
would hold its topic forever: once the same message was refused ``REFUSAL_ATTEMPTS`` times in
a row with such a code, ``refused`` says so and the publisher moves it to the dead letters
(kept, inspectable, counted) and releases the topic.
"""

from __future__ import annotations

import contextvars
import logging
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from streamguard.core.backoff import Backoff
from streamguard.state.outbox import OutboxMessage

__all__ = [
    "MESSAGE_REFUSALS",
    "PERMANENT",
    "REFUSAL_ATTEMPTS",
    "PubackWatch",
    "PublishRefused",
    "Refusal",
    "RefusedTopics",
    "paho_client",
]

log = logging.getLogger("streamguard.bus.publisher")

PERMANENT = frozenset({0x87, 0x90})
"""Not authorized, topic name invalid: the topic is refused until the broker's configuration
(its ACL, its topic rules) changes; its messages wait for that, never dead-lettered."""

MESSAGE_REFUSALS = frozenset({0x95, 0x99})
"""Packet too large, payload format invalid: the message itself is refused, and sending it
again will not change that (the codes that may pass, quota exceeded or unspecified, are not
here: they wait like the others)."""

REFUSAL_ATTEMPTS = 3
"""Refusals in a row of one message with the same ``MESSAGE_REFUSALS`` code before it is
dead-lettered and its topic released."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A PUBACK's failure reason code, its name and the broker's Reason String, if any."""

    code: int
    name: str
    reason: str | None = None

    @property
    def permanent(self) -> bool:
        """Refused until the broker's configuration changes (see ``PERMANENT``)."""
        return self.code in PERMANENT

    def __str__(self) -> str:
        text = f"0x{self.code:02X} {self.name}"
        return f"{text} ({self.reason})" if self.reason else text


class PublishRefused(Exception):
    """The broker acknowledged a publish with a failure reason code: not delivered.

    Neither a lost connection (``aiomqtt.MqttError``) nor a poison message."""

    def __init__(self, topic: str, refusal: Refusal) -> None:
        super().__init__(f"broker refused the publish on {topic[:200]}: {refusal}")
        self.topic = topic
        self.refusal = refusal


def paho_client(client: aiomqtt.Client) -> paho.Client:
    """aiomqtt's paho client (its private ``_client``: aiomqtt 2.x exposes neither it nor the
    PUBACK reason code). Raises if aiomqtt changed so that this no longer holds."""
    inner = getattr(client, "_client", None)
    if not isinstance(inner, paho.Client) or inner.on_publish is None:
        raise RuntimeError(
            "aiomqtt.Client._client is no longer a paho client with an on_publish handler: "
            "PUBACK reason codes cannot be read (see streamguard.bus.refusals)"
        )
    return inner


_SENT: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "streamguard_bus_sent_mids", default=None
)
"""The message ids paho gave the publishes of the current task (``PubackWatch.publish``)."""


class PubackWatch:
    """Reads the reason code of every PUBACK one aiomqtt client receives (one connection)."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._refused: dict[int, Refusal] = {}
        inner = paho_client(client)
        forward_publish = inner.publish
        forward_ack = cast("Callable[..., None]", inner.on_publish)  # VERSION2's signature

        def publish(*args: Any, **kwargs: Any) -> paho.MQTTMessageInfo:
            info = forward_publish(*args, **kwargs)
            if not info.is_published():  # its PUBACK is still to come: a new use of the mid
                self._refused.pop(info.mid, None)
            sent = _SENT.get()
            if sent is not None:
                sent.append(info.mid)
            return info

        def on_publish(
            client: paho.Client,
            userdata: Any,
            mid: int,
            reason_code: ReasonCode,
            properties: Properties,
        ) -> None:
            if reason_code.is_failure:
                reason = getattr(properties, "ReasonString", None)
                self._refused[mid] = Refusal(reason_code.value, reason_code.getName(), reason)
            forward_ack(client, userdata, mid, reason_code, properties)

        inner.publish = publish  # type: ignore[method-assign]
        inner.on_publish = on_publish

    async def publish(self, topic: str, payload: str, **kwargs: Any) -> None:
        """``aiomqtt.Client.publish``, raising ``PublishRefused`` on a failure PUBACK."""
        sent: list[int] = []
        token = _SENT.set(sent)
        try:
            await self._client.publish(topic, payload, **kwargs)
        finally:
            _SENT.reset(token)
        for mid in sent:
            refusal = self._refused.pop(mid, None)
            if refusal is not None:
                raise PublishRefused(topic, refusal)


@dataclass(slots=True)
class _Hold:
    refusal: Refusal
    refusals: int
    due: float
    """Loop time of the next try."""
    seq: int | None = None
    """The outbox message last refused (None for a retained status)."""
    same: int = 1
    """Refusals in a row of that message with that code."""


class RefusedTopics:
    """The topics the broker refused a publish on, each held back until its next try."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._held: dict[str, _Hold] = {}
        self.refused_total: Counter[str] = Counter()
        """Refused publishes by reason (``0x87 Not authorized``), for the metrics."""
        self.skipped = 0
        """Messages of held topics passed over by the last ``window``."""

    @property
    def held(self) -> dict[str, Refusal]:
        """Each held topic and its last refusal."""
        return {topic: hold.refusal for topic, hold in self._held.items()}

    def held_back(self, now: float) -> list[str]:
        """The held topics not due for a try at ``now``: the outbox read leaves them out."""
        return [topic for topic, hold in self._held.items() if hold.due > now]

    def window(
        self, messages: Sequence[OutboxMessage], now: float, keep: Container[str] = ()
    ) -> list[OutboxMessage]:
        """``messages`` less those of held topics: a topic due for its try at ``now`` sends
        its first message alone (accepted, the topic is free; refused, held again). A due
        topic with no message here is let go (its messages left, or lie further on: refused
        again, it is held again), unless in ``keep`` (retained status, tried apart)."""
        out: list[OutboxMessage] = []
        trying: set[str] = set()
        for message in messages:
            hold = self._held.get(message.topic)
            if hold is None:
                out.append(message)
            elif hold.due <= now and message.topic not in trying:
                trying.add(message.topic)
                out.append(message)
        self.skipped = len(messages) - len(out)
        for topic in [t for t, hold in self._held.items() if hold.due <= now]:
            if topic not in trying and topic not in keep:
                del self._held[topic]
        return out

    def next_due(self) -> float | None:
        """Loop time of the first held topic's next try, or None when none is held."""
        return min((hold.due for hold in self._held.values()), default=None)

    def retry_all(self, now: float) -> None:
        """A new connection (the broker may have been reconfigured): try held topics now."""
        for hold in self._held.values():
            hold.due = min(hold.due, now)

    def is_due(self, topic: str, now: float) -> bool:
        """Whether ``topic`` is held and due for its next try at ``now``."""
        hold = self._held.get(topic)
        return hold is not None and hold.due <= now

    def refused(
        self, topic: str, what: str, refusal: Refusal, now: float, seq: int | None = None
    ) -> bool:
        """The broker refused a publish (``what``: ``alert <id>``, outbox ``seq``) on
        ``topic``: hold the topic, say so. True when that message was refused for itself
        (``MESSAGE_REFUSALS``) ``REFUSAL_ATTEMPTS`` times in a row: the caller dead-letters
        it and ``release``s the topic."""
        hold = self._held.get(topic)
        count = hold.refusals + 1 if hold is not None else 1
        same = 1
        if (
            hold is not None
            and seq is not None
            and (hold.seq, hold.refusal.code)
            == (
                seq,
                refusal.code,
            )
        ):
            same = hold.same + 1
        delay = self._backoff.delay(64 if refusal.permanent else count)
        self._held[topic] = _Hold(refusal, count, now + delay, seq, same)
        self.refused_total[f"0x{refusal.code:02X} {refusal.name}"] += 1
        level = logging.ERROR if refusal.permanent else logging.WARNING
        log.log(
            level,
            "broker refused %s on %.200s: %s; not delivered, kept, its topic tried again in "
            "%.1f s (refusal %d in a row)",
            what,
            topic,
            refusal,
            delay,
            count,
            extra={"reason_code": refusal.code},
        )
        return seq is not None and refusal.code in MESSAGE_REFUSALS and same >= REFUSAL_ATTEMPTS

    def release(self, topic: str) -> None:
        """The message that held ``topic`` was dead-lettered: the topic's next one goes."""
        self._held.pop(topic, None)

    def delivered(self, topics: Iterable[str]) -> None:
        """A publish on each of ``topics`` was acknowledged: those held are free again."""
        for topic in topics:
            hold = self._held.pop(topic, None)
            if hold is not None:
                log.warning(
                    "broker accepts %.200s again after %d refusal(s) (last: %s)",
                    topic,
                    hold.refusals,
                    hold.refusal,
                )
