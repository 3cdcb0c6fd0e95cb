"""The ``desired_streams`` table: the streams the daemon should run, so they outlive a restart.

Today it holds the streams attached through the control API (``origin`` = ``api``): written on
attach and change, deleted on detach, read back at start. Streams of the config file are not
kept here — the file is their record. Each row is the whole ``StreamConfig`` as JSON, URL
included (it may carry a token: the database file is the daemon's alone), so a field added to
``StreamConfig`` is kept without a migration.

It is not ``state/attached.py``: that table remembers every stream ever attached, file or API,
*without* its URL and *after* its detach, for late AMS verdicts; this one is the current
desired set, with what it takes to run it. In fleet mode (a shared database) the desired set
of every origin lives here and ownership columns (owner, lease, generation) join it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from streamguard.config.streams import StreamConfig
from streamguard.state.db import Database

__all__ = ["DesiredStream", "DesiredStreams", "KeptStreams", "Origin"]


class Origin(StrEnum):
    """Who asked for a stream."""

    API = "api"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class DesiredStream:
    """One kept row: the stream's id and its config as stored (not validated again here: a
    config that no longer validates is for the caller to report, not for the store to drop)."""

    stream_id: str
    origin: Origin
    config: dict[str, Any]


class KeptStreams(Protocol):
    """Where the registry keeps API streams: ``DesiredStreams``, or fleet mode's shared set
    (``streams.fleet.FleetDesired``)."""

    async def put(self, stream: StreamConfig, origin: Origin = Origin.API) -> None:
        """Keep ``stream`` as it now is."""

    async def remove(self, stream_id: str) -> bool:
        """Forget ``stream_id``; False when it was not kept."""

    async def all(self, origin: Origin = Origin.API) -> list[DesiredStream]:
        """The kept streams to restore at start."""


class DesiredStreams:
    """Keeps the desired set: ``put`` on attach and change, ``remove`` on detach, ``all`` at
    start."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, stream: StreamConfig, origin: Origin = Origin.API) -> None:
        """Keep ``stream`` as it now is, replacing what was kept under its id."""
        now = datetime.now(UTC).isoformat()
        config = json.dumps(stream.model_dump(mode="json"), sort_keys=True)
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT INTO desired_streams"
                " (stream_id, origin, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (stream_id) DO UPDATE SET origin = excluded.origin,"
                " config = excluded.config, updated_at = excluded.updated_at",
                (stream.id, origin.value, config, now, now),
            )
        )

    async def remove(self, stream_id: str) -> bool:
        """Forget ``stream_id``; False when it was not kept."""

        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM desired_streams WHERE stream_id = ?", (stream_id,))
            return cursor.rowcount > 0

        return await self._db.run(delete)

    async def all(self, origin: Origin = Origin.API) -> list[DesiredStream]:
        """Every kept stream of ``origin``, oldest first."""

        def read(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            cursor = conn.execute(
                "SELECT stream_id, config FROM desired_streams WHERE origin = ?"
                " ORDER BY created_at, stream_id",
                (origin.value,),
            )
            return cursor.fetchall()

        rows = await self._db.run(read)
        return [DesiredStream(row[0], origin, _config(row[1])) for row in rows]


def _config(text: str) -> dict[str, Any]:
    """A stored config, or an empty one when the text is not a JSON object (the caller then
    reports it as invalid instead of the daemon failing to start)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
