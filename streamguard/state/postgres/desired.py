"""The desired set of streams in fleet mode: ``desired_streams`` in the shared database,
attached by any instance's API or config and run by whichever instance holds its lease
(``state/postgres/fleet.py``). Same surface as the SQLite ``DesiredStreams``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from streamguard.config.streams import StreamConfig
from streamguard.state.desired import DesiredStream, Origin
from streamguard.state.postgres.database import Connection, PgDatabase

__all__ = ["PgDesiredStreams", "StreamLease"]


@dataclass(frozen=True, slots=True)
class StreamLease:
    """A stream of the desired set and who holds its lease, as the database sees it now."""

    stream_id: str
    origin: Origin
    config: dict[str, Any]
    owner: str | None
    """The instance holding (or, when ``live`` is false, that last held) the lease."""
    generation: int | None
    lease_until: datetime | None
    live: bool
    """Whether ``owner`` holds a lease that has not expired."""
    updated_at: datetime | None = None
    """When its config was last written (a change through the API is conditional on it)."""


class PgDesiredStreams:
    """``put`` on attach and change (the lease is kept: its owner sees the new config at its
    next renewal), ``remove`` on detach (the owner loses the lease and stops it), ``all``."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def put(self, stream: StreamConfig, origin: Origin = Origin.API) -> None:
        """Keep ``stream`` as it now is, replacing what was kept under its id."""
        now = datetime.now(UTC)
        config = Jsonb(stream.model_dump(mode="json"))

        async def upsert(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO desired_streams"
                " (stream_id, origin, config, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (stream_id) DO UPDATE SET origin = excluded.origin,"
                " config = excluded.config, updated_at = excluded.updated_at",
                (stream.id, origin.value, config, now, now),
            )

        await self._db.run(upsert)

    async def remove(self, stream_id: str) -> bool:
        """Forget ``stream_id``; False when it was not kept."""

        async def delete(conn: Connection) -> bool:
            cursor = await conn.execute(
                "DELETE FROM desired_streams WHERE stream_id = %s", (stream_id,)
            )
            return cursor.rowcount > 0

        return await self._db.run(delete)

    async def all(self, origin: Origin | None = Origin.API) -> list[DesiredStream]:
        """Every kept stream of ``origin`` (None: of every origin), oldest first."""

        async def read(conn: Connection) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(
                "SELECT stream_id, origin, config FROM desired_streams"
                " WHERE %(origin)s::text IS NULL OR origin = %(origin)s"
                " ORDER BY created_at, stream_id",
                {"origin": None if origin is None else origin.value},
            )
            return await cursor.fetchall()

        rows = await self._db.run(read)
        return [DesiredStream(row[0], Origin(row[1]), _config(row[2])) for row in rows]

    async def leases(self, stream_id: str | None = None) -> list[StreamLease]:
        """Every stream of the desired set (or only ``stream_id``) with its lease, by id."""

        async def read(conn: Connection) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(
                "SELECT stream_id, origin, config, owner, generation, lease_until,"
                " owner IS NOT NULL AND lease_until >= now(), updated_at FROM desired_streams"
                " WHERE %(id)s::text IS NULL OR stream_id = %(id)s ORDER BY stream_id",
                {"id": stream_id},
            )
            return await cursor.fetchall()

        rows = await self._db.run(read)
        return [
            StreamLease(
                row[0], Origin(row[1]), _config(row[2]), row[3], row[4], row[5], row[6], row[7]
            )
            for row in rows
        ]


def _config(value: object) -> dict[str, Any]:
    """A stored config, or an empty one when it is not a JSON object (the caller reports it
    as invalid)."""
    return value if isinstance(value, dict) else {}
