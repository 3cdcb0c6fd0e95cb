"""Every segment's outcome in the shared database (fleet mode): the counterpart of
``state/results.py``, where each write carries the fence of its stream's lease.

``record`` asks ``fences`` (``Fleet.fence``) for the generation this instance holds for the
segment's stream; the write checks it in its transaction (its own, or its segment's unit
of work: ``state.postgres.units``) and is refused (``StaleWrite``) when the lease moved on,
or when this instance holds none. Any instance
reads every instance's results.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.state.postgres.database import Connection, PgDatabase, StaleWrite
from streamguard.state.postgres.fleet import Fence
from streamguard.state.postgres.units import write
from streamguard.state.results import RISK_ORDER, ResultQuery, verdict_columns
from streamguard.state.spool import DIRECT, Writes
from streamguard.state.usage import UsageRange

__all__ = ["PgResults"]

Fences = Callable[[str], Fence | None]
"""The fence this instance holds for a stream id, None when it holds none."""


class PgResults:
    """The shared ``results`` table, with ``Results``' surface; ``record`` goes through
    ``writes`` (a ``Spool`` keeps it in memory while the database is away)."""

    def __init__(self, db: PgDatabase, fences: Fences, writes: Writes = DIRECT) -> None:
        self._db = db
        self._fences = fences
        self._writes = writes
        self.on_stale: Callable[[str], None] | None = None
        """Told the stream id of a write refused as stale (fleet mode stops that stream)."""

    async def record(
        self, room_id: str, segment: Segment | SegmentInfo, verdict: Verdict, risk: str
    ) -> None:
        """Store a segment's result under its stream's lease (again: the latest wins)."""
        fence = self._fences(segment.stream_id)
        if fence is None:
            self._stale(segment.stream_id)
            raise StaleWrite(segment.stream_id, None)
        row = _row(room_id, segment, verdict, risk, fence)

        async def insert(conn: Connection) -> None:
            await conn.execute(_UPSERT, row)

        async def op() -> None:
            await write(self._db, insert, fence=fence)

        try:
            await self._writes.write("result", op)
        except StaleWrite:
            self._stale(segment.stream_id)
            raise

    def stale(self, stream_id: str) -> None:
        """Tell ``on_stale`` that a write of ``stream_id`` was refused as stale."""
        self._stale(stream_id)

    def _stale(self, stream_id: str) -> None:
        if self.on_stale is not None:
            self.on_stale(stream_id)

    async def replace_verdict(self, verdict: Verdict, risk: str) -> bool:
        """Put a late verdict on its segment's row (whoever holds the stream now: a late
        AMS verdict is settled by whichever instance polls it); False if unknown."""
        values = (
            *verdict_columns(verdict, risk),
            Jsonb(verdict.to_json()),
            _searchable(verdict),
            verdict.segment_id,
        )

        async def update(conn: Connection) -> bool:
            cursor = await conn.execute(
                "UPDATE results SET outcome = %s, suggestion = %s, label = %s, score = %s,"
                " risk = %s, engine = %s, reason = %s, verdict = %s, search = %s"
                " WHERE segment_id = %s",
                values,
            )
            return cursor.rowcount > 0

        return await self._db.run(update)

    async def usage(self, span: UsageRange | None = None) -> list[dict[str, Any]]:
        """Segments and minutes ingested, moderated and skipped per UTC day and label, and
        video frames taken and judged, fleet-wide, of the results that started in ``span``
        (default: all)."""
        span = span or UsageRange()
        since = span.since or datetime.min.replace(tzinfo=UTC)
        until = span.until or datetime.max.replace(tzinfo=UTC)

        async def fetch(conn: Connection) -> list[dict[str, Any]]:
            cursor = await conn.execute(_USAGE, (since, until))
            return [
                {
                    "day": day,
                    "label": label,
                    "segments": segments,
                    "minutes_ingested": round(ingested / 60, 3),
                    "minutes_moderated": round(moderated / 60, 3),
                    "minutes_skipped_silent": round(silent / 60, 3),
                    "minutes_unjudged": round(unjudged / 60, 3),
                    "frames": frames,
                    "frames_judged": judged,
                }
                for day, label, segments, ingested, moderated, silent, unjudged, frames, judged in (
                    await cursor.fetchall()
                )
            ]

        return await self._db.run(fetch)

    async def prune(self, older_than: datetime) -> int:
        """Delete results of segments that started before ``older_than``; return how many."""

        async def delete(conn: Connection) -> int:
            cursor = await conn.execute("DELETE FROM results WHERE started_at < %s", (older_than,))
            return cursor.rowcount

        return await self._db.run(delete)

    async def stream_of(self, segment_id: str) -> str | None:
        """The stream a recorded segment belongs to (None if it was never recorded)."""

        async def read(conn: Connection) -> str | None:
            cursor = await conn.execute(
                "SELECT stream_id FROM results WHERE segment_id = %s", (segment_id,)
            )
            row = await cursor.fetchone()
            return None if row is None else str(row[0])

        return await self._db.run(read)

    async def owners(self, stream_id: str) -> list[tuple[str, str | None, int | None]]:
        """(segment id, owner, generation) of a stream's results, oldest first."""

        async def read(conn: Connection) -> list[tuple[str, str | None, int | None]]:
            cursor = await conn.execute(
                "SELECT segment_id, owner, generation FROM results WHERE stream_id = %s"
                " ORDER BY started_at",
                (stream_id,),
            )
            return [(r[0], r[1], r[2]) for r in await cursor.fetchall()]

        return await self._db.run(read)

    async def query(self, q: ResultQuery) -> list[dict[str, Any]]:
        """Results matching every filter of ``q``, oldest first (``newest_first``: newest),
        after the cursor ``q.after`` (``text``: every word must appear in the transcript or
        the labels, case-insensitively); each with the incident its segment belongs to, if
        any (the fleet's shared history)."""
        clauses, args = _filters(q)
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
        order = sql.SQL("DESC" if q.newest_first else "ASC")
        query = sql.SQL(
            "SELECT segment, verdict, risk, room_id, started_at, segment_id,"
            " (SELECT i.incident_id FROM incident_segments AS i"
            "  WHERE i.segment_id = results.segment_id ORDER BY i.started_at LIMIT 1)"
            " FROM results{} ORDER BY started_at {order}, segment_id {order} LIMIT %s"
        ).format(where, order=order)

        async def fetch(conn: Connection) -> list[dict[str, Any]]:
            cursor = await conn.execute(query, [*args, q.limit])
            return [
                {
                    "segment": r[0],
                    "verdict": r[1],
                    "risk": r[2],
                    "room_id": r[3],
                    "incident_id": r[6],
                    "cursor": f"{r[4].astimezone(UTC).isoformat()}|{r[5]}",
                }
                for r in await cursor.fetchall()
            ]

        return await self._db.run(fetch)

    async def latest(self, stream_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The most recent result (by segment start) of each of ``stream_ids`` that has one."""

        async def fetch(conn: Connection) -> dict[str, dict[str, Any]]:
            cursor = await conn.execute(
                "SELECT DISTINCT ON (stream_id) stream_id, segment, verdict, risk FROM results"
                " WHERE stream_id = ANY(%s) ORDER BY stream_id, started_at DESC",
                (stream_ids,),
            )
            return {
                r[0]: {"segment": r[1], "verdict": r[2], "risk": r[3]}
                for r in await cursor.fetchall()
            }

        return await self._db.run(fetch)


def _row(
    room_id: str, segment: Segment | SegmentInfo, verdict: Verdict, risk: str, fence: Fence
) -> tuple[Any, ...]:
    body = verdict.to_json()
    search = _searchable(verdict)
    return (
        segment.id,
        segment.stream_id,
        room_id,
        segment.seq,
        segment.started_at,
        segment.ended_at,
        segment.duration,
        *verdict_columns(verdict, risk),
        Jsonb(segment.metadata()),
        Jsonb(body),
        fence.owner,
        fence.generation,
        search,
    )


def _searchable(verdict: Verdict) -> str:
    """The ``search`` column of a verdict: its transcript, labels and keywords as words."""
    return search_words(
        " ".join(
            [verdict.text, verdict.label, verdict.sub_label]
            + [f"{k.keyword} {k.label} {k.sub_label}" for k in verdict.keywords]
        )
    )


def search_words(text: str) -> str:
    """``text`` as SQLite's FTS5 tokenizer (``unicode61``, diacritics removed) sees it: its
    words lowered, between single spaces, with a space at each end, so that ``strpos`` of
    `` word `` finds whole words only ("hell" is not in "hello"; "you!" finds "you"), and
    of `` two words `` the two words side by side, as an FTS5 phrase does."""
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c)
    )
    return " " + " ".join(_WORD.findall(plain)) + " "


_WORD = re.compile(r"[^\W_]+")


def _filters(q: ResultQuery) -> tuple[list[sql.Composable], list[Any]]:
    clauses: list[sql.Composable] = []
    args: list[Any] = []
    for column, value in (
        ("stream_id", q.stream_id),
        ("room_id", q.room_id),
        ("segment_id", q.segment_id),
        ("label", q.label),
    ):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            args.append(value)
    if q.min_risk is not None:
        clauses.append(sql.SQL("risk = ANY(%s)"))
        args.append([r for r, n in RISK_ORDER.items() if n >= RISK_ORDER[q.min_risk]])
    if q.since is not None:
        clauses.append(sql.SQL("started_at >= %s"))
        args.append(q.since.astimezone(UTC))
    if q.until is not None:
        clauses.append(sql.SQL("started_at < %s"))
        args.append(q.until.astimezone(UTC))
    for word in (q.text or "").split():
        if words := search_words(word).strip():  # a word of punctuation alone: no word
            clauses.append(sql.SQL("strpos(search, %s) > 0"))
            args.append(f" {words} ")
    if q.after is not None:
        started_at, _, segment_id = q.after.partition("|")
        comparison = "<" if q.newest_first else ">"
        clauses.append(sql.SQL(f"(started_at, segment_id) {comparison} (%s, %s)"))
        args.extend((_cursor_time(started_at), segment_id))
    return clauses, args


def _cursor_time(text: str) -> datetime:
    """A cursor's time; one that does not parse starts after everything (an empty page)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


_UPSERT = """
INSERT INTO results (segment_id, stream_id, room_id, seq, started_at, ended_at, duration,
    outcome, suggestion, label, score, risk, engine, reason, segment, verdict, owner,
    generation, search)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (segment_id) DO UPDATE SET room_id = excluded.room_id, outcome = excluded.outcome,
    suggestion = excluded.suggestion, label = excluded.label, score = excluded.score,
    risk = excluded.risk, engine = excluded.engine, reason = excluded.reason,
    segment = excluded.segment, verdict = excluded.verdict, owner = excluded.owner,
    generation = excluded.generation, search = excluded.search
"""

_USAGE = """
SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, label,
    count(*) FILTER (WHERE duration > 0), sum(duration),
    sum(CASE WHEN outcome = 'moderated' THEN duration ELSE 0 END),
    sum(CASE WHEN outcome = 'no_speech' THEN duration ELSE 0 END),
    sum(CASE WHEN outcome IN ('skipped_overloaded', 'failed', 'not_moderated')
        THEN duration ELSE 0 END),
    count(*) FILTER (WHERE duration = 0),
    count(*) FILTER (WHERE duration = 0 AND outcome = 'moderated')
FROM results WHERE started_at >= %s AND started_at < %s
GROUP BY day, label ORDER BY day, label
"""
