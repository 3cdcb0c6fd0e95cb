"""The incident journal: open incidents in SQLite, so that a crashed daemon still ends them.

Each open incident keeps its latest alert JSON. Incidents a previous run left open (it was
killed, or the machine went down) are ended at the next start with an ``end`` alert built
from that JSON — the same ``alert_id`` a timely end would have had.

In fleet mode each change is also written to the shared journal (``state.postgres.journal``),
so that a live instance ends the incidents of one that died and does not come back.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Protocol

from streamguard.state.db import Database
from streamguard.state.spool import DIRECT, Writes

__all__ = ["IncidentJournal", "SharedJournal"]


class SharedJournal(Protocol):
    """Fleet mode's shared journal (``state.postgres.journal.PgIncidentJournal``)."""

    async def record(self, incident_id: str, last_alert: dict[str, Any]) -> None: ...

    async def forget(self, incident_id: str) -> None: ...

    async def adopt_orphans(self) -> list[dict[str, Any]]: ...


class IncidentJournal:
    """Open incidents by id, with the JSON of their latest alert. Changes go through
    ``writes`` (a ``Spool`` keeps them in order with the alerts when the disk is full), to
    the SQLite file and, in fleet mode, to the ``shared`` journal too."""

    def __init__(
        self, db: Database, writes: Writes = DIRECT, shared: SharedJournal | None = None
    ) -> None:
        self._db = db
        self._writes = writes
        self.shared = shared

    async def left_open(self) -> list[dict[str, Any]]:
        """The latest alerts of incidents a previous run left open."""

        def load(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute("SELECT last_alert FROM alerts_incidents ORDER BY rowid")
            return [json.loads(row[0]) for row in rows]

        return await self._db.run(load)

    async def record(self, incident_id: str, last_alert: dict[str, Any]) -> None:
        """Remember an open incident's latest alert JSON."""
        text = json.dumps(last_alert, ensure_ascii=False)

        async def write() -> None:
            await self._db.run(
                lambda conn: conn.execute(
                    "INSERT INTO alerts_incidents (incident_id, last_alert) VALUES (?, ?)"
                    " ON CONFLICT (incident_id) DO UPDATE SET last_alert = excluded.last_alert",
                    (incident_id, text),
                )
            )
            if self.shared is not None:  # again on a retry: an upsert
                await self.shared.record(incident_id, last_alert)

        await self._writes.write("journal", write)

    async def forget(self, incident_id: str) -> None:
        """The incident ended (its end alert is in the outbox)."""

        async def write() -> None:
            await self._db.run(
                lambda conn: conn.execute(
                    "DELETE FROM alerts_incidents WHERE incident_id = ?", (incident_id,)
                )
            )
            if self.shared is not None:
                await self.shared.forget(incident_id)

        await self._writes.write("journal", write)
