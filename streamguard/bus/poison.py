"""Poison messages: finding the outbox messages that can never be published, and moving them
out of the way so that no message stops the outbox.

Two kinds are found. A message whose publish raises anything but a lost connection (paho
refusing a 66 kB topic, a payload that cannot be stamped) is dead-lettered at once. A message
the broker drops the connection over (one larger than its maximum packet size) looks like any
lost connection: after a connection is lost under a batch, its messages go out one at a time,
and one that was alone when the connection was lost ``POISON_ATTEMPTS`` times in a row, each
time on a connection the broker had just acknowledged the instance status on, is dead-lettered
too. A dead letter is moved to ``state.dead_letters`` with its error, logged, and reported as
an instance health event ``message_dead_lettered`` through the outbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from streamguard.core.status import InstanceEvent, InstanceEventKind
from streamguard.core.topics import Topics
from streamguard.state.outbox import MessageKind, OutboxMessage, OutboxStore

__all__ = ["POISON_ATTEMPTS", "PUBLISHER_LOOP", "PoisonGuard"]

log = logging.getLogger("streamguard.bus.publisher")

POISON_ATTEMPTS = 3
"""Lost connections in a row while one message was sent alone before it is dead-lettered."""

PUBLISHER_LOOP = "outbox.publisher"
"""The supervised loop the publisher runs as (named in its health events)."""


class PoisonGuard:
    """The publisher's bookkeeping of messages in flight, and its dead-lettering."""

    def __init__(self, outbox: OutboxStore, topics: Topics, instance_id: str) -> None:
        self._outbox = outbox
        self._events = topics.instance_events(instance_id)
        self._instance_id = instance_id
        self._in_flight: list[OutboxMessage] = []
        """Sent and not settled; left set when the connection is lost under them."""
        self._careful_through: int | None = None
        """After a lost batch: messages up to this ``seq`` go out one at a time."""
        self._lone_failures: dict[int, int] = {}
        """``seq`` → lost connections in a row while that message was sent alone."""

    def window(self, batch: list[OutboxMessage]) -> list[OutboxMessage]:
        """The messages of ``batch`` to send now (only the oldest after a lost batch), which
        count as in flight until ``settled``."""
        if self._careful_through is not None and batch:
            if batch[0].seq > self._careful_through:
                self._careful_through = None
            else:
                batch = batch[:1]
        self._in_flight = batch
        return batch

    def settled(self, acked: Sequence[OutboxMessage], lost: Sequence[OutboxMessage]) -> None:
        """A batch came back: ``acked`` were delivered, ``lost`` went with the connection."""
        for message in acked:
            self._lone_failures.pop(message.seq, None)
        self._in_flight = list(lost)

    async def connection_lost(self, error: str) -> None:
        """The connection was lost (``error``): what was in flight goes one at a time next,
        and a message that was alone ``POISON_ATTEMPTS`` times in a row is dead-lettered."""
        in_flight, self._in_flight = self._in_flight, []
        if not in_flight:
            return
        self._careful_through = max(m.seq for m in in_flight)
        if len(in_flight) > 1:
            return  # any of them may be to blame
        (alone,) = in_flight
        failures = self._lone_failures.get(alone.seq, 0) + 1
        self._lone_failures = {alone.seq: failures}
        if failures >= POISON_ATTEMPTS:
            self._lone_failures = {}
            await self.dead_letter(
                alone,
                f"the connection was lost {failures} times in a row while it was sent alone "
                f"(the broker may refuse it, e.g. as larger than its maximum packet): {error}",
            )

    async def dead_letter(self, message: OutboxMessage, error: str) -> None:
        """Move a poison message out of the way and say so on the instance's events."""
        log.error(
            "outbox message %s (%s, %d-character topic %.200s) cannot be published; "
            "moved to the dead letters: %s",
            message.message_id,
            message.kind.value,
            len(message.topic),
            message.topic,
            error,
            extra={"message_id": message.message_id},
        )
        await self._outbox.dead_letter(message, error)
        if message.topic == self._events:
            return  # a health event that cannot go out is not reported by another one
        event = InstanceEvent(
            self._instance_id,
            InstanceEventKind.MESSAGE_DEAD_LETTERED,
            datetime.now(UTC),
            PUBLISHER_LOOP,
            f"{message.kind.value} to a {len(message.topic)}-character topic "
            f"{message.topic[:120]!r}: {error[:500]}",
            message_id=message.message_id,
        )
        payload = json.dumps(event.to_json(), ensure_ascii=False)
        await self._outbox.add(MessageKind.EVENT, event.event_id, self._events, payload)
