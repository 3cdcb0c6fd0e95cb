"""The shared outbox (fleet mode): the counterpart of ``state/outbox.py`` in PostgreSQL.

Every instance writes its alerts and events here before they are published, and deletes
them on the broker's PUBACK, as with SQLite. What differs is who publishes: ``peek`` claims
the messages it returns for ``claim_seconds`` (``FOR UPDATE SKIP LOCKED``, so two
publishers never take the same one), and it may take a message when its writer is this
instance, or a dead one (no heartbeat for a lease length), or when an earlier claim
expired. So the alerts a dead instance left are sent by the living, and each instance
sends its own in the order it wrote them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any

from streamguard.state.db import StorageUnavailable
from streamguard.state.dead_letters import DeadLetter
from streamguard.state.outbox import MessageKind, OutboxMessage
from streamguard.state.postgres.database import Connection, PgDatabase
from streamguard.state.postgres.fleet import Fence
from streamguard.state.postgres.units import write

__all__ = ["DEPTH_BOUND", "PgOutbox"]

log = logging.getLogger(__name__)

CLAIM_SECONDS = 30.0
"""How long a peeked message is this publisher's before another may take it."""


class PgOutbox:
    """``Outbox``'s surface over the shared table; ``depth`` counts what waits fleet-wide
    (as of the last ``peek``), up to ``DEPTH_BOUND``."""

    def __init__(
        self,
        db: PgDatabase,
        instance_id: str,
        *,
        dead_after: float,
        claim_seconds: float = CLAIM_SECONDS,
        clock: Callable[[], float] = time.time,
        fences: Callable[[str], Fence | None] = lambda stream_id: None,
    ) -> None:
        self._db = db
        self.fences = fences
        """The fence this instance holds for a stream id (``Fleet.fence``)."""
        self.instance_id = instance_id
        self._dead_after = timedelta(seconds=dead_after)
        self._claim = timedelta(seconds=claim_seconds)
        self._clock = clock
        self._emptied = asyncio.Event()
        self.depth = 0
        self.oldest_created_at: float | None = None
        self.added_total = 0
        self.removed_total = 0
        self.dead_lettered_total = 0
        self._wakes: list[Callable[[], None]] = []
        self._acked: set[int] = set()
        """Acknowledged messages not deleted yet (the database was away)."""

    async def open(self) -> None:
        """Read how much waits fleet-wide."""
        self.depth, self.oldest_created_at = await self._db.run(_waiting)

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
        """Write a message durably (inside a unit of work: when the unit is written, and
        True is returned at once); False if one with this id is already waiting. A message
        about a stream this instance holds a lease on carries its fence, and a stale owner's
        is refused (``StaleWrite``); one about a stream it holds none on (an incident ended
        by its timer after the stream moved) goes as it is."""
        created_at = self._clock()
        fence = None if stream_id is None else self.fences(stream_id)
        result = [True]

        async def insert(conn: Connection) -> bool:
            cursor = await conn.execute(
                "INSERT INTO alerts_outbox (message_id, kind, topic, payload, created_at,"
                " origin) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
                (message_id, kind.value, topic, payload, created_at, self.instance_id),
            )
            return cursor.rowcount == 1

        def added(added: bool) -> None:
            result[0] = added
            if added:
                self.depth += 1
                if self.oldest_created_at is None:
                    self.oldest_created_at = created_at
            self.added_total += added
            for wake in self._wakes:
                wake()

        await write(self._db, insert, fence=fence, then=added)
        return result[0]

    def wake_on_add(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` once an added message is committed (one added in a unit of work is
        committed after ``add`` returned: its publisher learns of it from here)."""
        self._wakes.append(wake)

    async def peek(self, limit: int, skip_topics: Collection[str] = ()) -> list[OutboxMessage]:
        """Claim and return up to ``limit`` messages this instance may publish, oldest
        first, none on ``skip_topics`` (neither read nor claimed), after deleting the
        acknowledged ones an outage kept: they are not sent again."""
        await self._delete_acked()

        async def claim(conn: Connection) -> tuple[list[OutboxMessage], int, float | None]:
            cursor = await conn.execute(
                _CLAIM,
                {
                    "me": self.instance_id,
                    "dead": self._dead_after,
                    "claim": self._claim,
                    "limit": limit,
                    "skip": sorted(skip_topics),
                },
            )
            rows = sorted(await cursor.fetchall())
            depth, oldest = await _waiting(conn)
            return [_message(r) for r in rows], depth, oldest

        messages, self.depth, self.oldest_created_at = await self._db.run(claim)
        return messages

    async def remove(self, seqs: Sequence[int]) -> None:
        """Forget acknowledged messages; while the database is away they are kept here and
        deleted by the next ``remove``, ``peek`` or ``settle``."""
        self._acked.update(seqs)
        try:
            await self._delete_acked()
        except StorageUnavailable as exc:
            log.warning(
                "outbox: %d acknowledged message(s) not deleted yet: %s", len(self._acked), exc
            )

    async def _delete_acked(self) -> None:
        if not self._acked:
            return
        done = sorted(self._acked)

        async def delete(conn: Connection) -> tuple[int, int, float | None]:
            cursor = await conn.execute("DELETE FROM alerts_outbox WHERE seq = ANY(%s)", (done,))
            return (cursor.rowcount, *await _waiting(conn))

        removed, self.depth, self.oldest_created_at = await self._db.run(delete)
        self._acked.difference_update(done)
        self.removed_total += removed
        if self.depth == 0:
            self._emptied.set()

    async def settle(self) -> None:
        """Delete the acknowledged messages an outage kept, if the database is back (else
        they are published again by whoever peeks them next: same ids)."""
        try:
            await self._delete_acked()
        except StorageUnavailable as exc:
            log.warning("outbox: %d acknowledged message(s) not deleted: %s", len(self._acked), exc)

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

        async def move(conn: Connection) -> bool:
            cursor = await conn.execute("DELETE FROM alerts_outbox WHERE seq = %s", (message.seq,))
            if cursor.rowcount == 1:
                await conn.execute(
                    "INSERT INTO outbox_dead_letters (message_id, kind, topic, payload,"
                    " created_at, failed_at, error) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        letter.message_id,
                        letter.kind,
                        letter.topic,
                        letter.payload,
                        letter.created_at,
                        letter.failed_at,
                        letter.error,
                    ),
                )
            return cursor.rowcount == 1

        moved = await self._db.run(move)
        self.dead_lettered_total += moved
        self.depth -= moved
        if self.depth <= 0:
            self._emptied.set()

    async def wait_empty(self) -> None:
        """Return once nothing waits (as far as this instance last saw)."""
        while self.depth > 0:
            self._emptied.clear()
            await self._emptied.wait()


DEPTH_BOUND = 10_000
"""``depth`` counts the waiting messages up to this many (a backlog beyond reads as this):
a read of the outbox costs the same whatever the backlog, never a scan of it all."""


async def _waiting(conn: Connection) -> tuple[int, float | None]:
    """How many messages wait (at most ``DEPTH_BOUND``) and when the oldest was written
    (by ``seq``, its primary key: one index probe)."""
    cursor = await conn.execute(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM alerts_outbox LIMIT %(bound)s) AS w),"
        " (SELECT created_at FROM alerts_outbox ORDER BY seq LIMIT 1)",
        {"bound": DEPTH_BOUND},
    )
    row = await cursor.fetchone()
    return (0, None) if row is None else (int(row[0]), row[1])


def _message(row: tuple[Any, ...]) -> OutboxMessage:
    try:
        kind = MessageKind(row[2])
    except ValueError:  # written by a newer version: goes out as written
        kind = MessageKind.EVENT
    return OutboxMessage(row[0], row[1], kind, row[3], row[4], row[5])


_CLAIM = """
WITH next AS (
    SELECT o.seq FROM alerts_outbox AS o
    WHERE (o.claimed_by = %(me)s
       OR o.claimed_until < now()
       OR (o.claimed_by IS NULL AND (o.origin = %(me)s OR NOT EXISTS (
            SELECT 1 FROM fleet_instances AS i
            WHERE i.instance_id = o.origin AND i.heartbeat_at > now() - %(dead)s))))
      AND o.topic <> ALL(%(skip)s::text[])
    ORDER BY o.seq
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE alerts_outbox AS o SET claimed_by = %(me)s, claimed_until = now() + %(claim)s
FROM next WHERE o.seq = next.seq
RETURNING o.seq, o.message_id, o.kind, o.topic, o.payload, o.created_at
"""
"""Take the next messages this instance may publish: its own, a dead writer's, or any
whose claim expired, but none on a topic the publisher holds back; rows another publisher
is claiming right now are skipped."""
