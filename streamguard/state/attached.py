"""The ``attached_streams`` table: every stream as it was last attached, without its URL.

A late AMS verdict may belong to a stream this run no longer has (attached through the API
before a restart, or removed from the config); what an alert says of a stream (room,
profile, metadata) is kept here so the verdict can still be alerted on. The URL is not kept:
it may hold a token.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamguard.config.streams import StreamConfig
from streamguard.state.db import Database
from streamguard.state.spool import DIRECT, Writes

__all__ = ["AttachedStream", "AttachedStreams"]


@dataclass(frozen=True, slots=True)
class AttachedStream:
    """What was kept of a stream when it was last attached."""

    stream_id: str
    room: str
    profile: str
    metadata: dict[str, Any]


class AttachedStreams:
    """Remembers streams on attach (through ``writes``: a ``Spool`` keeps it for later when
    the disk is full); answers what was kept of one."""

    def __init__(self, db: Database, writes: Writes = DIRECT) -> None:
        self._db = db
        self._writes = writes

    async def remember(self, streams: Iterable[StreamConfig]) -> None:
        """Keep what alerts say of these streams, replacing what was kept of them."""
        now = datetime.now(UTC).isoformat()
        rows = [
            (s.id, s.room_id, s.profile, json.dumps(s.metadata, sort_keys=True), now)
            for s in streams
        ]
        await self._writes.write(
            "attached",
            lambda: self._db.run(
                lambda conn: conn.executemany(
                    "INSERT OR REPLACE INTO attached_streams"
                    " (stream_id, room, profile, metadata, attached_at) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            ),
        )

    async def get(self, stream_id: str) -> AttachedStream | None:
        """What was kept of ``stream_id``, or None when it was never remembered."""

        def read(conn: sqlite3.Connection) -> sqlite3.Row | None:
            cursor = conn.execute(
                "SELECT room, profile, metadata FROM attached_streams WHERE stream_id = ?",
                (stream_id,),
            )
            row: sqlite3.Row | None = cursor.fetchone()
            return row

        row = await self._db.run(read)
        if row is None:
            return None
        return AttachedStream(stream_id, row[0], row[1], json.loads(row[2]))
