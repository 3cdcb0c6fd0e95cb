"""The incident history: every incident raised, its alerting segments and the alerts sent.

The journal (``state/journal.py``) holds only open incidents, to end them after a crash; this
store keeps them all, for the console and ``GET /v1/incidents``. It is written from the alert
JSON (``moderation/schema/alert.v1.schema.json``) as each alert is raised, plus the segment's
whole verdict (the alert carries only a transcript excerpt). A full disk makes its writes
wait in the spool with the alerts; any other failure is logged, never allowed to stop the
alert itself.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from streamguard.core.verdict import Verdict
from streamguard.state.db import Database, StateError, StorageUnavailable
from streamguard.state.spool import DIRECT, Writes

__all__ = [
    "IncidentHistory",
    "IncidentQuery",
    "IncidentStore",
    "incident_filters",
    "incident_json",
    "incident_values",
]

log = logging.getLogger("streamguard.state.incidents")

RISK_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}

_COLUMNS = (
    "incident_id, room_id, stream_id, label, peak_risk, started_at, last_segment_at,"
    " ended_at, segments"
)


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters for ``IncidentHistory.query``; None means no filter."""

    room_id: str | None = None
    label: str | None = None
    risk: str | None = None
    """The incident's peak risk, exactly."""
    min_risk: str | None = None
    since: datetime | None = None
    """Incidents that started at or after this time."""
    until: datetime | None = None
    """Incidents that started before this time."""
    open_only: bool | None = None
    """True: only open incidents; False: only ended ones."""
    limit: int = 100


class IncidentStore(Protocol):
    """Where the incident history is kept: ``IncidentHistory`` (SQLite) or, in fleet mode,
    the shared ``state.postgres.incidents.PgIncidentHistory``."""

    async def record(
        self, alert: dict[str, Any], verdict: Verdict | None = None, *, sent: bool = True
    ) -> None:
        """Record an alert's incident (never raises a database error)."""

    async def query(self, q: IncidentQuery) -> list[dict[str, Any]]:
        """Incidents matching every filter of ``q``, newest first."""

    async def get(self, incident_id: str) -> dict[str, Any] | None:
        """One incident with its segments and alerts; None if unknown."""

    async def evidence_of(self, segment_id: str) -> dict[str, Any] | None:
        """The evidence record of an alerting segment, or None."""


def incident_filters(q: IncidentQuery, mark: str = "?") -> tuple[str, list[Any]]:
    """The WHERE clause (empty without filters) and its arguments for ``q``, with ``mark``
    as the placeholder (``?`` for SQLite, ``%s`` for PostgreSQL)."""
    clauses, args = [], list[Any]()
    for column, value in (("room_id", q.room_id), ("label", q.label), ("peak_risk", q.risk)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            args.append(value)
    if q.min_risk is not None:
        allowed = [r for r, n in RISK_RANK.items() if n >= RISK_RANK[q.min_risk]]
        clauses.append(f"peak_risk IN ({','.join([mark] * len(allowed))})")
        args.extend(allowed)
    if q.since is not None:
        clauses.append(f"started_at >= {mark}")
        args.append(q.since.astimezone(UTC).isoformat())
    if q.until is not None:
        clauses.append(f"started_at < {mark}")
        args.append(q.until.astimezone(UTC).isoformat())
    if q.open_only is not None:
        clauses.append("ended_at IS NULL" if q.open_only else "ended_at IS NOT NULL")
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


class IncidentHistory:
    """The ``incidents``, ``incident_segments`` and ``incident_alerts`` tables."""

    def __init__(self, db: Database, writes: Writes = DIRECT) -> None:
        self._db = db
        self._writes = writes

    async def record(
        self, alert: dict[str, Any], verdict: Verdict | None = None, *, sent: bool = True
    ) -> None:
        """Record an alert's incident: its segment (with ``verdict``, when given) and, when
        ``sent``, the alert itself; an ``end`` alert closes the incident. Goes through
        ``writes``: with a ``Spool``, history a full disk refuses waits in memory, in order
        with the alerts and the journal, and is written when the disk takes it. Never raises
        a database error: the alert matters more than its history."""

        async def write() -> None:
            try:
                await self._db.run(lambda conn: _write(conn, alert, verdict, sent))
            except StorageUnavailable:
                raise  # the spool keeps it for later
            except StateError as exc:
                log.error("incident history not written for %s: %s", alert.get("alert_id"), exc)

        try:
            await self._writes.write("history", write)
        except StateError as exc:  # no spool to keep it (``DIRECT``)
            log.error("incident history not written for %s: %s", alert.get("alert_id"), exc)

    async def query(self, q: IncidentQuery) -> list[dict[str, Any]]:
        """Incidents matching every filter of ``q``, newest first."""
        where, args = incident_filters(q)
        sql = (
            f"SELECT {_COLUMNS} FROM incidents {where} ORDER BY started_at DESC, rowid DESC LIMIT ?"
        )
        args.append(q.limit)
        return await self._db.run(
            lambda conn: [incident_json(row) for row in conn.execute(sql, args)]
        )

    async def get(self, incident_id: str) -> dict[str, Any] | None:
        """One incident with its segments (oldest first) and alerts; None if unknown."""
        return await self._db.run(lambda conn: _read_incident(conn, incident_id))

    async def evidence_of(self, segment_id: str) -> dict[str, Any] | None:
        """The evidence record of an alerting segment (``Evidence.to_json``), or None."""

        def fetch(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT evidence FROM incident_segments"
                " WHERE segment_id = ? AND evidence IS NOT NULL LIMIT 1",
                (segment_id,),
            ).fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._db.run(fetch)


def incident_values(alert: dict[str, Any]) -> tuple[Any, ...]:
    """An alert's incident as a row of ``incidents`` (the order of its columns), for either
    backend."""
    incident, stream = alert["incident"], alert["stream"]
    ended_at = alert["detected_at"] if incident["event"] == "end" else None
    return (
        incident["id"],
        stream["room_id"],
        stream["id"],
        alert["risk"]["label"],
        incident["peak_risk"],
        incident["started_at"],
        alert["segment"]["ended_at"],
        ended_at,
        incident["segments"],
    )


def _write(
    conn: sqlite3.Connection, alert: dict[str, Any], verdict: Verdict | None, sent: bool
) -> None:
    incident, segment = alert["incident"], alert["segment"]
    conn.execute(
        f"INSERT INTO incidents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (incident_id) DO UPDATE SET peak_risk = excluded.peak_risk,"
        " last_segment_at = max(last_segment_at, excluded.last_segment_at),"
        " ended_at = excluded.ended_at, segments = excluded.segments",
        incident_values(alert),
    )
    if verdict is not None:
        judgement = {"risk": alert["risk"], "keywords": alert["keywords"]}
        evidence = alert.get("evidence")
        conn.execute(
            "INSERT OR REPLACE INTO incident_segments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        conn.execute(
            "INSERT OR IGNORE INTO incident_alerts VALUES (?, ?, ?, ?, ?, ?)",
            (
                alert["alert_id"],
                incident["id"],
                incident["event"],
                segment["id"],
                alert["detected_at"],
                json.dumps(alert, ensure_ascii=False),
            ),
        )


def incident_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``incidents`` row (by column name) as the API shows it."""
    return {
        "id": row["incident_id"],
        "room_id": row["room_id"],
        "stream_id": row["stream_id"],
        "label": row["label"],
        "peak_risk": row["peak_risk"],
        "started_at": row["started_at"],
        "last_segment_at": row["last_segment_at"],
        "ended_at": row["ended_at"],
        "state": "open" if row["ended_at"] is None else "ended",
        "segments": row["segments"],
    }


def _read_incident(conn: sqlite3.Connection, incident_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE incident_id = ?", (incident_id,)
    ).fetchone()
    if row is None:
        return None
    segments = [
        {
            "segment": json.loads(s["segment"]),
            **json.loads(s["judgement"]),
            "verdict": json.loads(s["verdict"]),
            "evidence": None if s["evidence"] is None else json.loads(s["evidence"]),
        }
        for s in conn.execute(
            "SELECT * FROM incident_segments WHERE incident_id = ? ORDER BY started_at",
            (incident_id,),
        )
    ]
    alerts = [
        json.loads(a["payload"])
        for a in conn.execute(
            "SELECT payload FROM incident_alerts WHERE incident_id = ? ORDER BY detected_at, rowid",
            (incident_id,),
        )
    ]
    return {"incident": incident_json(row), "segments": segments, "alerts": alerts}
