"""The incident history in fleet mode: ``incidents``, ``incident_segments`` and
``incident_alerts`` in the shared database, so ``/v1/incidents`` and the console answer for
every instance's incidents. Written from the alert JSON as in SQLite
(``state/incidents.py``); writing it is best effort there and here: a failure is logged,
never allowed to stop the alert itself."""

from __future__ import annotations

import json
import logging
from typing import Any

from streamguard.core.verdict import Verdict
from streamguard.state.db import StateError
from streamguard.state.incidents import (
    IncidentQuery,
    incident_filters,
    incident_json,
    incident_values,
)
from streamguard.state.postgres.database import Connection, PgDatabase
from streamguard.state.postgres.units import write

__all__ = ["PgIncidentHistory"]

log = logging.getLogger("streamguard.state.incidents")

_COLUMNS = (
    "incident_id, room_id, stream_id, label, peak_risk, started_at, last_segment_at,"
    " ended_at, segments"
)
_NAMES = _COLUMNS.replace(" ", "").split(",")


class PgIncidentHistory:
    """``state.incidents.IncidentStore`` over the shared tables."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def record(
        self, alert: dict[str, Any], verdict: Verdict | None = None, *, sent: bool = True
    ) -> None:
        """Record an alert's incident: its segment (with ``verdict``) and, when ``sent``,
        the alert; an ``end`` alert closes the incident. Never raises a database error."""

        async def insert(conn: Connection) -> None:
            await _write(conn, alert, verdict, sent)

        try:
            await write(self._db, insert, best_effort=True)
        except StateError as exc:
            log.error("incident history not written for %s: %s", alert.get("alert_id"), exc)

    async def query(self, q: IncidentQuery) -> list[dict[str, Any]]:
        """Incidents of the whole fleet matching every filter of ``q``, newest first."""
        where, args = incident_filters(q, "%s")
        sql = (
            f"SELECT {_COLUMNS} FROM incidents {where} ORDER BY started_at DESC, seq DESC LIMIT %s"
        )

        async def fetch(conn: Connection) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(sql, [*args, q.limit])
            return await cursor.fetchall()

        return [
            incident_json(dict(zip(_NAMES, row, strict=True))) for row in await self._db.run(fetch)
        ]

    async def get(self, incident_id: str) -> dict[str, Any] | None:
        """One incident with its segments (oldest first) and alerts; None if unknown."""
        return await self._db.run(lambda conn: _read(conn, incident_id))

    async def evidence_of(self, segment_id: str) -> dict[str, Any] | None:
        """The evidence record of an alerting segment (the clip lies on the instance that
        kept it), or None."""

        async def fetch(conn: Connection) -> dict[str, Any] | None:
            cursor = await conn.execute(
                "SELECT evidence FROM incident_segments"
                " WHERE segment_id = %s AND evidence IS NOT NULL LIMIT 1",
                (segment_id,),
            )
            row = await cursor.fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._db.run(fetch)


async def _write(
    conn: Connection, alert: dict[str, Any], verdict: Verdict | None, sent: bool
) -> None:
    incident, segment = alert["incident"], alert["segment"]
    await conn.execute(
        f"INSERT INTO incidents ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (incident_id) DO UPDATE SET peak_risk = excluded.peak_risk,"
        " last_segment_at = GREATEST(incidents.last_segment_at, excluded.last_segment_at),"
        " ended_at = excluded.ended_at, segments = excluded.segments",
        incident_values(alert),
    )
    if verdict is not None:
        judgement = {"risk": alert["risk"], "keywords": alert["keywords"]}
        evidence = alert.get("evidence")
        await conn.execute(
            "INSERT INTO incident_segments (incident_id, segment_id, started_at, risk, segment,"
            " judgement, verdict, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (incident_id, segment_id) DO UPDATE SET started_at ="
            " excluded.started_at, risk = excluded.risk, segment = excluded.segment,"
            " judgement = excluded.judgement, verdict = excluded.verdict,"
            " evidence = excluded.evidence",
            (
                incident["id"],
                segment["id"],
                segment["started_at"],
                alert["risk"]["level"],
                json.dumps(segment),
                json.dumps(judgement, ensure_ascii=False),
                json.dumps(verdict.to_json(), ensure_ascii=False),
                None if evidence is None else json.dumps(evidence),
            ),
        )
    if sent:
        await conn.execute(
            "INSERT INTO incident_alerts (alert_id, incident_id, event, segment_id, detected_at,"
            " payload) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (alert_id) DO NOTHING",
            (
                alert["alert_id"],
                incident["id"],
                incident["event"],
                segment["id"],
                alert["detected_at"],
                json.dumps(alert, ensure_ascii=False),
            ),
        )


async def _read(conn: Connection, incident_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE incident_id = %s", (incident_id,)
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    cursor = await conn.execute(
        "SELECT segment, judgement, verdict, evidence FROM incident_segments"
        " WHERE incident_id = %s ORDER BY started_at",
        (incident_id,),
    )
    segments = [
        {
            "segment": json.loads(segment),
            **json.loads(judgement),
            "verdict": json.loads(verdict),
            "evidence": None if evidence is None else json.loads(evidence),
        }
        for segment, judgement, verdict, evidence in await cursor.fetchall()
    ]
    cursor = await conn.execute(
        "SELECT payload FROM incident_alerts WHERE incident_id = %s ORDER BY detected_at, seq",
        (incident_id,),
    )
    alerts = [json.loads(payload) for (payload,) in await cursor.fetchall()]
    incident = incident_json(dict(zip(_NAMES, row, strict=True)))
    return {"incident": incident, "segments": segments, "alerts": alerts}
