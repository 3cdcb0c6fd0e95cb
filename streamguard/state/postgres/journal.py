"""The open-incident journal in fleet mode, shared: what an instance taking over a dead
instance's rooms needs to end the incidents that instance left open.

On one machine the journal (``state.journal``, SQLite) lets a restarted daemon end the
incidents its crash left open. In a fleet the instance that died may never come back (its
disk lost with it), and the rooms are judged on by others, which open incidents of their own.
So each open incident is also kept here with its instance and its latest alert JSON, and an
instance that took a stream over adopts the open incidents of every instance no longer alive
(``adopt_orphans``) and ends them: the ``end`` alert is built from that JSON with the same
``alert_id`` a timely end would have had (should the dead instance come back and end them
too, consumers deduplicate on it).

The incident itself is not continued across instances: its tracker state (cooldown, peak,
quiet timer) is in the memory of the instance that ran the room, and the new owner's next
risky segment opens an incident of its own.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from streamguard.state.postgres.database import Connection, PgDatabase
from streamguard.state.postgres.units import write

__all__ = ["PgIncidentJournal"]


class PgIncidentJournal:
    """Open incidents of the fleet by id, with their instance and latest alert JSON."""

    def __init__(self, db: PgDatabase, instance_id: str, *, alive_within: float) -> None:
        self._db = db
        self.instance_id = instance_id
        self._alive = timedelta(seconds=alive_within)

    async def record(self, incident_id: str, last_alert: dict[str, Any]) -> None:
        """Remember an open incident's latest alert JSON, as this instance's."""
        text = json.dumps(last_alert, ensure_ascii=False)

        async def upsert(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO open_incidents (incident_id, instance_id, last_alert)"
                " VALUES (%s, %s, %s) ON CONFLICT (incident_id) DO UPDATE SET"
                " instance_id = excluded.instance_id, last_alert = excluded.last_alert",
                (incident_id, self.instance_id, text),
            )

        await write(self._db, upsert)

    async def forget(self, incident_id: str) -> None:
        """The incident ended (its end alert is in the outbox)."""

        async def delete(conn: Connection) -> None:
            await conn.execute("DELETE FROM open_incidents WHERE incident_id = %s", (incident_id,))

        await write(self._db, delete)

    async def adopt_orphans(self) -> list[dict[str, Any]]:
        """Take over the open incidents of every instance no longer alive (it renewed no
        heartbeat within a lease); return their latest alerts, to end them and ``forget``."""

        async def adopt(conn: Connection) -> list[dict[str, Any]]:
            cursor = await conn.execute(_ADOPT, {"me": self.instance_id, "alive": self._alive})
            return [json.loads(row[0]) for row in await cursor.fetchall()]

        return await self._db.once(adopt)


_ADOPT = """
UPDATE open_incidents AS o SET instance_id = %(me)s
WHERE o.instance_id <> %(me)s AND NOT EXISTS (
    SELECT 1 FROM fleet_instances AS f
    WHERE f.instance_id = o.instance_id AND f.heartbeat_at > now() - %(alive)s
)
RETURNING o.last_alert
"""
