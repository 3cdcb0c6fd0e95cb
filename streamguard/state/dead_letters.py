"""Dead letters: outbox messages the publisher could never deliver, kept aside.

A message whose publish fails on its own (a topic the client refuses, a payload that does
not encode, one the broker drops the connection over every time) would otherwise stay at the
head of the outbox and stop everything behind it, across restarts. ``Outbox.dead_letter``
moves it here in the same transaction that removes it from the outbox, with the error, so
nothing is lost and a person can inspect or replay it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from streamguard.state.db import Database

__all__ = ["MAX_ERROR_CHARS", "DeadLetter", "DeadLetters", "insert_dead_letter"]

MAX_ERROR_CHARS = 2000
"""The error kept with a dead letter is cut to this length."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message moved out of the outbox; times are Unix times."""

    message_id: str
    kind: str
    topic: str
    payload: str
    created_at: float
    failed_at: float
    error: str


def insert_dead_letter(conn: sqlite3.Connection, letter: DeadLetter) -> None:
    """Write ``letter`` inside the caller's transaction (the outbox's, which removes it)."""
    conn.execute(
        "INSERT INTO outbox_dead_letters"
        " (message_id, kind, topic, payload, created_at, failed_at, error)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            letter.message_id,
            letter.kind,
            letter.topic,
            letter.payload,
            letter.created_at,
            letter.failed_at,
            letter.error[:MAX_ERROR_CHARS],
        ),
    )


class DeadLetters:
    """Reads the dead letters in the shared state database, oldest first."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def count(self) -> int:
        """How many dead letters are kept."""

        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT COUNT(*) FROM outbox_dead_letters").fetchone()
            return int(row[0])

        return await self._db.run(count)

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters."""

        def select(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                "SELECT message_id, kind, topic, payload, created_at, failed_at, error"
                " FROM outbox_dead_letters ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
            return [DeadLetter(*row) for row in rows]

        return await self._db.run(select)
