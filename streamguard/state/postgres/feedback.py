"""Moderators' feedback in fleet mode: the ``feedback`` table in the shared database, so
feedback given through any instance's API is counted and listed by every instance. Same
surface and validation as the SQLite ``state.feedback.Feedback``."""

from __future__ import annotations

from typing import Any

from streamguard.state.feedback import KINDS, feedback_entry, sense_filter
from streamguard.state.postgres.database import Connection, PgDatabase

__all__ = ["PgFeedback"]

_COLUMNS = "id, kind, target_type, target_id, label, note, created_at"


class PgFeedback:
    """``record``, ``counts`` and ``entries`` over the shared table."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def record(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and store one piece of feedback; return it with its id."""
        entry = feedback_entry(body)

        async def insert(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO feedback ({_COLUMNS}) VALUES (%(id)s, %(kind)s,"
                " %(target_type)s, %(target_id)s, %(label)s, %(note)s, %(created_at)s)",
                entry,
            )

        await self._db.run(insert)
        return entry

    async def counts(self, *, frames: bool | None = None) -> dict[str, dict[str, int]]:
        """Feedback counts by kind and label ("" when no label was given), fleet-wide: on
        video frames only (``frames=True``), on the rest only (False), or all (None)."""
        where, args = sense_filter(frames, "%s")

        async def fetch(conn: Connection) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(
                f"SELECT kind, label, count(*) FROM feedback {where} GROUP BY kind, label",
                args,
            )
            return await cursor.fetchall()

        counts: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        for kind, label, n in await self._db.run(fetch):
            counts.setdefault(kind, {})[label] = int(n)
        return counts

    async def entries(self, target_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest feedback, newest first; only about ``target_id`` when given."""

        async def fetch(conn: Connection) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM feedback"
                " WHERE %(target)s::text IS NULL OR target_id = %(target)s"
                " ORDER BY created_at DESC, seq DESC LIMIT %(limit)s",
                {"target": target_id, "limit": limit},
            )
            return await cursor.fetchall()

        names = _COLUMNS.split(", ")
        return [dict(zip(names, row, strict=True)) for row in await self._db.run(fetch)]
