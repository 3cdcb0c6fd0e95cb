"""Changes of a stream's config made through any instance's API, picked up by its owner.

``PATCH /v1/streams/{id}`` of a stream that runs on another instance (or on none right now)
writes the new config into the shared desired set (``change``) and bumps its ``updated_at``;
the lease is left alone. The write is conditional on the ``updated_at`` the API read the config
at: two PATCHes of the same stream through two instances cannot both merge over the same old
config, the later one is refused (``Kept.STALE``, a 409 ``conflict`` to retry).
The owner looks once a lease turn (``owned``: one statement over
its own rows, returning a row's config only when its ``updated_at`` differs from the one it
last saw) and applies what changed. No extra connection, no LISTEN: one query per instance
per turn (a third of a lease), whatever the number of streams it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from psycopg.types.json import Jsonb

from streamguard.state.desired import Origin
from streamguard.state.postgres.database import Connection, PgDatabase

__all__ = ["ConfigChanges", "Kept", "OwnedStream"]


class Kept(Enum):
    """What became of a change (``ConfigChanges.change``)."""

    CHANGED = "changed"
    GONE = "gone"
    """No such stream any more."""
    STALE = "stale"
    """Its config was written again since the caller read it: nothing kept."""


@dataclass(frozen=True, slots=True)
class OwnedStream:
    """A stream this instance holds, as the desired set has it now."""

    stream_id: str
    updated_at: datetime
    origin: Origin
    config: dict[str, Any] | None
    """The kept config when ``updated_at`` is not the one the caller knew (else None)."""


class ConfigChanges:
    """Write a change for the owner (API side); read the owner's changed rows (owner side)."""

    def __init__(self, db: PgDatabase, instance_id: str) -> None:
        self._db = db
        self.instance_id = instance_id

    async def change(self, stream_id: str, config: dict[str, Any], seen: datetime | None) -> Kept:
        """Keep ``config`` as the stream's (its lease unchanged), only while its config is
        still the one written at ``seen`` (the one the caller merged the change over; None:
        whatever it is)."""

        async def update(conn: Connection) -> Kept:
            cursor = await conn.execute(
                "UPDATE desired_streams SET config = %(config)s, updated_at = clock_timestamp()"
                " WHERE stream_id = %(id)s"
                " AND (%(seen)s::timestamptz IS NULL OR updated_at = %(seen)s)",
                {"config": Jsonb(config), "id": stream_id, "seen": seen},
            )
            if cursor.rowcount == 1:
                return Kept.CHANGED
            cursor = await conn.execute(
                "SELECT 1 FROM desired_streams WHERE stream_id = %s", (stream_id,)
            )
            return Kept.STALE if await cursor.fetchone() else Kept.GONE

        return await self._db.run(update)

    async def owned(self, known: dict[str, datetime]) -> list[OwnedStream]:
        """Every stream this instance owns, with its config where ``updated_at`` is not the
        one in ``known`` (a change, or a stream not seen yet)."""

        async def select(conn: Connection) -> list[OwnedStream]:
            cursor = await conn.execute(
                _OWNED, (list(known), list(known.values()), self.instance_id)
            )
            return [
                OwnedStream(row[0], row[1], Origin(row[2]), row[3])
                for row in await cursor.fetchall()
            ]

        return await self._db.once(select)


_OWNED = """
SELECT d.stream_id, d.updated_at, d.origin,
    CASE WHEN k.seen IS DISTINCT FROM d.updated_at THEN d.config END
FROM desired_streams AS d
LEFT JOIN unnest(%s::text[], %s::timestamptz[]) AS k(id, seen) ON k.id = d.stream_id
WHERE d.owner = %s
"""
