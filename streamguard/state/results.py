"""Every segment's outcome, kept so nothing heard goes unrecorded and results can be queried."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.state.db import Database
from streamguard.state.spool import DIRECT, Writes
from streamguard.state.usage import UsageRange, usage_rows

__all__ = ["ResultQuery", "ResultStore", "Results", "fts_phrases", "verdict_columns"]


RISK_ORDER = {"none": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True, slots=True)
class ResultQuery:
    """Filters for ``Results.query``; None means no filter."""

    stream_id: str | None = None
    room_id: str | None = None
    segment_id: str | None = None
    label: str | None = None
    min_risk: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    """Words that must all appear in the transcript or the labels (full-text search)."""
    limit: int = 100
    newest_first: bool = False
    after: str | None = None
    """A result's ``cursor``: only results after it in this order (the next page)."""


class ResultStore(Protocol):
    """What the daemon needs of a results table: ``Results`` (SQLite) or, in fleet mode,
    ``state.postgres.results.PgResults`` (shared, fenced)."""

    async def record(
        self, room_id: str, segment: Segment | SegmentInfo, verdict: Verdict, risk: str
    ) -> None:
        """Store a segment's result (again: the latest record of a segment wins)."""

    async def prune(self, older_than: datetime) -> int:
        """Delete results of segments that started before ``older_than``; return how many."""

    async def stream_of(self, segment_id: str) -> str | None:
        """The stream a recorded segment belongs to."""

    async def replace_verdict(self, verdict: Verdict, risk: str) -> bool:
        """Put a late verdict on its segment's row; False if the segment is unknown."""

    async def query(self, q: ResultQuery) -> list[dict[str, Any]]:
        """Results matching every filter of ``q``, oldest first (``newest_first``: newest),
        after the cursor ``q.after``; each with its ``cursor`` and ``incident_id``."""

    async def latest(self, stream_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The most recent result of each of ``stream_ids`` that has one."""

    async def usage(self, span: UsageRange | None = None) -> list[dict[str, Any]]:
        """Segments and minutes ingested, moderated and skipped per UTC day and label."""


class Results:
    """The ``results`` table: one row per segment, written once it has a verdict.

    ``record`` goes through ``writes``: with a ``Spool``, a result the full disk refuses
    waits in memory and is written when the disk takes it (it is not queryable till then).
    """

    def __init__(self, db: Database, writes: Writes = DIRECT) -> None:
        self._db = db
        self._writes = writes

    async def record(
        self, room_id: str, segment: Segment | SegmentInfo, verdict: Verdict, risk: str
    ) -> None:
        """Store a segment's result (again: the latest record of a segment wins)."""
        row = (
            segment.id,
            segment.stream_id,
            room_id,
            segment.seq,
            segment.started_at.isoformat(),
            segment.ended_at.isoformat(),
            segment.duration,
            *verdict_columns(verdict, risk),
            json.dumps(segment.metadata()),
            json.dumps(verdict.to_json()),
        )
        await self._writes.write(
            "result",
            lambda: self._db.run(
                lambda conn: conn.execute(
                    "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row
                )
            ),
        )

    async def prune(self, older_than: datetime) -> int:
        """Delete results of segments that started before ``older_than``; return how many."""
        cutoff = older_than.astimezone(UTC).isoformat()
        return await self._db.run(
            lambda conn: (
                conn.execute("DELETE FROM results WHERE started_at < ?", (cutoff,)).rowcount
            )
        )

    async def stream_of(self, segment_id: str) -> str | None:
        """The stream a recorded segment belongs to (None if it was never recorded)."""
        row = await self._db.run(
            lambda conn: conn.execute(
                "SELECT stream_id FROM results WHERE segment_id = ?", (segment_id,)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def replace_verdict(self, verdict: Verdict, risk: str) -> bool:
        """Put a late verdict (e.g. an AMS task settled after a restart) on its segment's row,
        replacing the "failed" one recorded at shutdown; False if the segment is unknown."""
        values = (
            *verdict_columns(verdict, risk),
            json.dumps(verdict.to_json()),
            verdict.segment_id,
        )
        changed = await self._db.run(
            lambda conn: (
                conn.execute(
                    "UPDATE results SET outcome = ?, suggestion = ?, label = ?, score = ?,"
                    " risk = ?, engine = ?, reason = ?, verdict = ? WHERE segment_id = ?",
                    values,
                ).rowcount
            )
        )
        return bool(changed)

    async def query(self, q: ResultQuery) -> list[dict[str, Any]]:
        """Results matching every filter of ``q``, oldest first (``newest_first``: newest),
        after ``q.after`` if given; each with the incident its segment belongs to, if any."""
        where, args = _where(q)
        order = "DESC" if q.newest_first else "ASC"
        sql = (
            "SELECT segment_id, started_at, segment, verdict, risk, room_id,"
            " (SELECT i.incident_id FROM incident_segments AS i"
            "  WHERE i.segment_id = results.segment_id ORDER BY i.started_at LIMIT 1)"
            f" AS incident_id FROM results {where}"
            f" ORDER BY started_at {order}, segment_id {order} LIMIT ?"
        )
        args.append(q.limit)

        def fetch(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [
                {
                    "segment": json.loads(row["segment"]),
                    "verdict": json.loads(row["verdict"]),
                    "risk": row["risk"],
                    "room_id": row["room_id"],
                    "incident_id": row["incident_id"],
                    "cursor": f"{row['started_at']}|{row['segment_id']}",
                }
                for row in conn.execute(sql, args)
            ]

        return await self._db.run(fetch)

    async def latest(self, stream_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The most recent result (by segment start) of each of ``stream_ids`` that has one."""

        def fetch(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            latest = {}
            for stream_id in stream_ids:
                row = conn.execute(
                    "SELECT segment, verdict, risk FROM results WHERE stream_id = ?"
                    " ORDER BY started_at DESC LIMIT 1",
                    (stream_id,),
                ).fetchone()
                if row is not None:
                    latest[stream_id] = {
                        "segment": json.loads(row["segment"]),
                        "verdict": json.loads(row["verdict"]),
                        "risk": row["risk"],
                    }
            return latest

        return await self._db.run(fetch)

    async def usage(self, span: UsageRange | None = None) -> list[dict[str, Any]]:
        """Segments and minutes ingested, moderated and skipped per UTC day and label, and
        video frames taken and judged (``state.usage``), of the results that started in
        ``span`` (default: all)."""
        return await self._db.run(lambda conn: usage_rows(conn, span or UsageRange()))


def _where(q: ResultQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (and its arguments) of ``q``'s filters."""
    clauses, args = [], list[Any]()
    for column, value in (
        ("stream_id", q.stream_id),
        ("room_id", q.room_id),
        ("segment_id", q.segment_id),
        ("label", q.label),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if q.min_risk is not None:
        allowed = [r for r, n in RISK_ORDER.items() if n >= RISK_ORDER[q.min_risk]]
        clauses.append(f"risk IN ({','.join('?' * len(allowed))})")
        args.extend(allowed)
    if q.since is not None:
        clauses.append("started_at >= ?")
        args.append(q.since.astimezone(UTC).isoformat())
    if q.until is not None:
        clauses.append("started_at < ?")
        args.append(q.until.astimezone(UTC).isoformat())
    if q.text is not None:
        clauses.append("rowid IN (SELECT rowid FROM results_search WHERE results_search MATCH ?)")
        args.append(fts_phrases(q.text))
    if q.after is not None:
        started_at, _, segment_id = q.after.partition("|")
        clauses.append(f"(started_at, segment_id) {'<' if q.newest_first else '>'} (?, ?)")
        args.extend((started_at, segment_id))
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


def fts_phrases(text: str) -> str:
    """``text`` as an FTS5 query that needs every word of it, whatever characters it holds:
    each word a quoted phrase (so ``"``, ``*``, ``OR`` or ``NEAR`` are only words)."""
    words = text.split()
    return " ".join('"' + word.replace('"', '""') + '"' for word in words) or '""'


def verdict_columns(verdict: Verdict, risk: str) -> tuple[str, str, str, int, str, str, str]:
    """outcome, suggestion, label, score, risk, engine, reason: the queryable verdict columns."""
    return (
        verdict.outcome.value,
        verdict.suggestion.value,
        verdict.label,
        verdict.score,
        risk,
        verdict.engine,
        verdict.reason,
    )
