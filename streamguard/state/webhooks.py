"""Webhook deliveries: one durable feed of alerts, one cursor per destination.

The MQTT outbox (``alerts_outbox``) forgets an alert on its PUBACK, so it cannot also wait
for webhooks. A trigger (``state.schema``) copies every alert written to the outbox into
``webhook_feed`` in the same transaction, while at least one destination is registered:
no alert can reach MQTT and miss the webhooks, even across a crash. Each destination keeps a
cursor, the ``seq`` of the last alert it delivered (or skipped, or dead-lettered); it reads
the feed after its cursor, in ``seq`` order, and moves the cursor only once the receiver
answered 2xx. A feed row is deleted once every cursor passed it.

A destination registered for the first time starts at the outbox's latest ``seq`` (it is not
sent the history); one no longer configured is forgotten at start, so it holds nothing back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamguard.state.db import Database
from streamguard.state.dead_letters import DeadLetter, insert_dead_letter

__all__ = ["WebhookDeliveries", "WebhookMessage"]


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """An alert waiting for one destination; ``created_at`` is Unix time."""

    seq: int
    message_id: str
    payload: str
    created_at: float


class WebhookDeliveries:
    """The feed and the destinations' cursors, in the shared state database."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def register(self, destinations: Sequence[str]) -> None:
        """Keep a cursor for exactly ``destinations``: new ones start after the latest alert
        written, ones no longer listed are forgotten (with the feed rows only they held)."""
        now = self._clock()

        def apply(conn: sqlite3.Connection) -> None:
            latest = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'alerts_outbox'"
            ).fetchone()
            start = latest[0] if latest else 0
            known = {row[0] for row in conn.execute("SELECT destination FROM webhook_cursors")}
            for gone in known - set(destinations):
                conn.execute("DELETE FROM webhook_cursors WHERE destination = ?", (gone,))
            conn.executemany(
                "INSERT INTO webhook_cursors (destination, delivered_seq, updated_at)"
                " VALUES (?, ?, ?) ON CONFLICT (destination) DO NOTHING",
                [(name, start, now) for name in destinations],
            )
            _prune(conn)

        await self._db.run(apply)

    async def keep(self, destination: str, seconds: float) -> bool:
        """One machine sends every destination itself (fleet mode holds them in turn)."""
        del destination, seconds
        return True

    async def release(self, destination: str) -> None:
        """Nothing to give back on one machine."""
        del destination

    async def pending(self, destination: str, limit: int) -> list[WebhookMessage]:
        """The oldest ``limit`` alerts ``destination`` has not delivered, in order."""

        def select(conn: sqlite3.Connection) -> list[WebhookMessage]:
            rows = conn.execute(
                "SELECT seq, message_id, payload, created_at FROM webhook_feed WHERE seq >"
                " (SELECT delivered_seq FROM webhook_cursors WHERE destination = ?)"
                " ORDER BY seq LIMIT ?",
                (destination, limit),
            ).fetchall()
            return [WebhookMessage(r[0], r[1], r[2], r[3]) for r in rows]

        return await self._db.run(select)

    async def backlog(self, destination: str) -> int:
        """How many alerts wait for ``destination``."""

        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM webhook_feed WHERE seq >"
                " (SELECT delivered_seq FROM webhook_cursors WHERE destination = ?)",
                (destination,),
            ).fetchone()
            return int(row[0])

        return await self._db.run(count)

    async def delivered(self, destination: str, seq: int) -> None:
        """Move ``destination``'s cursor to ``seq`` (delivered, or not wanted there)."""
        now = self._clock()

        def advance(conn: sqlite3.Connection) -> None:
            _advance(conn, destination, seq, now)

        await self._db.run(advance)

    async def dead_letter(self, destination: str, message: WebhookMessage, error: str) -> None:
        """Give up on ``message`` for ``destination``: keep it in the dead letters (topic
        ``webhook:<destination>``) and move the cursor past it, in one transaction."""
        now = self._clock()
        letter = DeadLetter(
            message.message_id,
            "alert",
            f"webhook:{destination}",
            message.payload,
            message.created_at,
            now,
            error,
        )

        def move(conn: sqlite3.Connection) -> None:
            insert_dead_letter(conn, letter)
            _advance(conn, destination, message.seq, now)

        await self._db.run(move)


def _advance(conn: sqlite3.Connection, destination: str, seq: int, now: float) -> None:
    conn.execute(
        "UPDATE webhook_cursors SET delivered_seq = ?, updated_at = ?"
        " WHERE destination = ? AND delivered_seq < ?",
        (seq, now, destination, seq),
    )
    _prune(conn)


def _prune(conn: sqlite3.Connection) -> None:
    """Delete the feed rows every destination has passed (all of them when none is left)."""
    conn.execute(
        "DELETE FROM webhook_feed WHERE seq <="
        " coalesce((SELECT MIN(delivered_seq) FROM webhook_cursors), seq)"
    )
