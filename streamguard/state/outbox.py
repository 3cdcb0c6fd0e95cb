"""The outbox: every alert and health event is written to SQLite before it is published.

A message leaves the outbox only once the broker acknowledged it (QoS 1 PUBACK). Messages go
out in the order they were written (``seq``). A message id already waiting is not written
twice, so a segment judged again after a crash does not queue a second copy.
``depth`` and ``oldest_created_at`` are kept current for metrics and health (the oldest is
the first written: ``seq`` order). A message that can never be delivered is moved to the dead
letters (``dead_letter``) so it cannot hold up the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from streamguard.state.db import Database, StorageUnavailable
from streamguard.state.dead_letters import DeadLetter, insert_dead_letter

__all__ = ["MessageKind", "Outbox", "OutboxMessage", "OutboxStore"]

log = logging.getLogger(__name__)


class MessageKind(StrEnum):
    """Alerts get publish stamps (published_at, latency, stale); events go out as written."""

    ALERT = "alert"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting for its PUBACK; ``created_at`` is Unix time."""

    seq: int
    message_id: str
    kind: MessageKind
    topic: str
    payload: str
    created_at: float


class OutboxStore(Protocol):
    """What the publisher and the sink need of an outbox: ``Outbox`` (SQLite) or, in fleet
    mode, ``state.postgres.outbox.PgOutbox`` (shared by the instances)."""

    depth: int
    oldest_created_at: float | None
    added_total: int
    removed_total: int
    dead_lettered_total: int

    async def open(self) -> None:
        """Read the backlog waiting."""

    def oldest_age(self) -> float | None:
        """Seconds the oldest waiting message has waited, or None when empty."""

    async def add(
        self,
        kind: MessageKind,
        message_id: str,
        topic: str,
        payload: str,
        stream_id: str | None = None,
    ) -> bool:
        """Write a message durably (about ``stream_id``, when it is a stream's: fleet mode
        fences it); False if one with this id is already waiting."""

    async def peek(self, limit: int, skip_topics: Collection[str] = ()) -> list[OutboxMessage]:
        """The next ``limit`` messages to publish, in order, leaving out those whose topic is
        in ``skip_topics`` (held back by the publisher)."""

    async def remove(self, seqs: Sequence[int]) -> None:
        """Forget acknowledged messages."""

    async def settle(self) -> None:
        """Finish what a refused delete left."""

    async def dead_letter(self, message: OutboxMessage, error: str) -> None:
        """Move a message that cannot be delivered to the dead letters."""

    async def wait_empty(self) -> None:
        """Return once nothing waits."""


class Outbox:
    """Durable FIFO of messages for the bus, in the shared state database."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._emptied = asyncio.Event()
        self.depth = 0
        """Messages waiting now."""
        self.oldest_created_at: float | None = None
        """Unix time the oldest waiting message was written, if any wait."""
        self.added_total = 0
        self.removed_total = 0
        self.dead_lettered_total = 0
        """Messages moved to the dead letters by this process."""
        self._acked: set[int] = set()
        """Acknowledged messages whose delete the disk refused (see ``remove``)."""

    async def open(self) -> None:
        """Read the backlog a previous run left waiting."""

        def count(conn: sqlite3.Connection) -> tuple[int, float | None]:
            return conn.execute("SELECT COUNT(*) FROM alerts_outbox").fetchone()[0], _oldest(conn)

        self.depth, self.oldest_created_at = await self._db.run(count)

    def oldest_age(self) -> float | None:
        """Seconds the oldest waiting message has waited, or None when empty."""
        if self.oldest_created_at is None:
            return None
        return max(0.0, self._clock() - self.oldest_created_at)

    async def add(
        self,
        kind: MessageKind,
        message_id: str,
        topic: str,
        payload: str,
        stream_id: str | None = None,
    ) -> bool:
        """Write a message durably; False if one with this id is already waiting.
        (``stream_id`` matters only to the shared outbox of fleet mode: one machine has no
        leases to fence.)"""
        del stream_id
        created_at = self._clock()

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO alerts_outbox (message_id, kind, topic, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                (message_id, kind.value, topic, payload, created_at),
            )
            return cursor.rowcount == 1

        # Counters change only once the transaction committed: a COMMIT refused by a full
        # disk must not leave a message counted that is not there.
        added = await self._db.run(insert)
        if added:
            self.depth += 1
            if self.oldest_created_at is None:  # else the oldest is older than this one
                self.oldest_created_at = created_at
        self.added_total += added
        return added

    async def peek(self, limit: int, skip_topics: Collection[str] = ()) -> list[OutboxMessage]:
        """The oldest ``limit`` waiting messages, in order, but for those on ``skip_topics``
        (filtered in the query: none of them is read) and acknowledged ones whose delete the
        disk refused (not waiting any more)."""
        skipped = frozenset(self._acked)  # a copy: the set changes on the event loop
        topics = json.dumps(sorted(skip_topics))  # one parameter, however many topics

        def select(conn: sqlite3.Connection) -> list[OutboxMessage]:
            rows = conn.execute(
                "SELECT seq, message_id, kind, topic, payload, created_at FROM alerts_outbox"
                " WHERE topic NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?",
                (topics, limit + len(skipped)),
            ).fetchall()
            messages = [OutboxMessage(r[0], r[1], _kind(r[2]), r[3], r[4], r[5]) for r in rows]
            return [m for m in messages if m.seq not in skipped][:limit]

        return await self._db.run(select)

    async def remove(self, seqs: Sequence[int]) -> None:
        """Forget acknowledged messages. When the disk refuses the delete (full), they are
        remembered as acknowledged and deleted with the next ``remove`` or ``settle``: the
        publisher goes on, and only a restart in between would send them twice."""
        fresh = [s for s in seqs if s not in self._acked]
        self._acked.update(fresh)
        self.depth -= len(fresh)
        self.removed_total += len(fresh)
        await self.settle()
        if self.depth == 0:
            self._emptied.set()

    async def settle(self) -> None:
        """Delete the acknowledged messages still in the table, if the disk lets us."""
        if not self._acked:
            return
        done = sorted(self._acked)

        def delete(conn: sqlite3.Connection) -> float | None:
            conn.executemany("DELETE FROM alerts_outbox WHERE seq = ?", [(s,) for s in done])
            return _oldest(conn)

        try:
            oldest = await self._db.run(delete)
        except StorageUnavailable as exc:
            log.warning("outbox: %d acknowledged message(s) not deleted yet: %s", len(done), exc)
            return
        self._acked.difference_update(done)
        self.oldest_created_at = oldest

    async def dead_letter(self, message: OutboxMessage, error: str) -> None:
        """Move a message that cannot be delivered to the dead letters, in one transaction."""
        letter = DeadLetter(
            message.message_id,
            message.kind.value,
            message.topic,
            message.payload,
            message.created_at,
            self._clock(),
            error,
        )

        acked = frozenset(self._acked)

        def move(conn: sqlite3.Connection) -> tuple[bool, float | None]:
            cursor = conn.execute("DELETE FROM alerts_outbox WHERE seq = ?", (message.seq,))
            if cursor.rowcount == 1:
                insert_dead_letter(conn, letter)
            return cursor.rowcount == 1, _oldest(conn, skip=acked)

        moved, oldest = await self._db.run(move)
        if moved:
            self.depth -= 1
            self.oldest_created_at = oldest
        self.dead_lettered_total += moved
        if self.depth == 0:
            self._emptied.set()

    async def wait_empty(self) -> None:
        """Return once nothing waits in the outbox."""
        while self.depth:
            self._emptied.clear()
            await self._emptied.wait()


def _oldest(conn: sqlite3.Connection, skip: Iterable[int] = ()) -> float | None:
    """Unix time the first written message still waiting was written, or None."""
    # The counters are kept incrementally: COUNT(*) or MIN() would scan the whole backlog
    # on every write, which turns a 10,000-alert outage quadratic.
    skipped = set(skip)
    rows = conn.execute(
        "SELECT seq, created_at FROM alerts_outbox ORDER BY seq LIMIT ?", (len(skipped) + 1,)
    )
    return next((row[1] for row in rows if row[0] not in skipped), None)


def _kind(value: str) -> MessageKind:
    # A kind this version does not know (written by a newer one) goes out as written.
    try:
        return MessageKind(value)
    except ValueError:
        return MessageKind.EVENT
