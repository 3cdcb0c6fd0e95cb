"""Where every segment sent to AMS stands, in SQLite, so a restart resumes and never re-bills.

A segment moves ``queued`` (intent recorded, clip on disk) → ``submitting`` (a Create call
carries it; if the daemon dies here the outcome is unknown and is reconciled with
DescribeTasks before any resubmission) → ``pending`` (AMS accepted it: task id known) →
``done`` or ``failed`` (verdict stored). An ERROR task goes back to ``queued`` once.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol

from streamguard.core.excerpt import Excerpt
from streamguard.core.segment import SegmentInfo
from streamguard.core.verdict import Outcome, Verdict
from streamguard.state.db import Database

__all__ = ["AmsTaskStore", "SegmentState", "TaskStore", "TrackedSegment"]


class SegmentState:
    """The states of a tracked segment (strings in the database)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    TERMINAL = frozenset({DONE, FAILED})


@dataclass(frozen=True, slots=True)
class TrackedSegment:
    """One row of ``ams_segments``. ``due_at``: when to submit (queued) or poll (pending)."""

    segment_id: str
    stream_id: str
    biz_type: str | None
    clip: str
    owned_clip: bool
    duration: float
    clip_offset: float
    """Seconds into the segment where the clip starts."""
    state: str
    task_id: str | None
    ams_status: str | None
    submit_attempts: int
    deliveries: int
    polls: int
    created_at: float
    submitted_at: float | None
    accepted_at: float | None
    updated_at: float
    due_at: float
    last_error: str
    verdict: str | None
    excerpt_json: str
    """``Excerpt.to_json`` of the pieces of the segment the clip holds."""
    segment_json: str
    """``SegmentInfo.to_json`` of the segment ('' in rows from before it was kept)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TrackedSegment:
        """Build from a ``SELECT *`` row."""
        data = dict(row)
        data["owned_clip"] = bool(data["owned_clip"])
        data["excerpt_json"] = data.pop("excerpt")
        data["segment_json"] = data.pop("segment")
        return cls(**data)

    def segment(self) -> SegmentInfo | None:
        """The segment without its audio, when the row holds it."""
        return SegmentInfo.from_json(self.segment_json) if self.segment_json else None

    def excerpt(self) -> Excerpt:
        """The pieces of the segment the clip holds (times AMS gives are in clip time)."""
        if self.excerpt_json:
            return Excerpt.from_json(self.excerpt_json)
        return Excerpt(((self.clip_offset, self.clip_offset + self.duration),))

    def stored_verdict(self) -> dict[str, Any] | None:
        """The final verdict's JSON, once there is one."""
        return json.loads(self.verdict) if self.verdict else None


class AmsTaskStore(Protocol):
    """Where the AMS engine tracks its segments: ``TaskStore`` (SQLite, one instance) or
    ``PgTaskStore`` (fleet mode, shared by every instance)."""

    async def get(self, segment_id: str) -> TrackedSegment | None:
        """The segment's row, if it was ever handed to the engine."""

    async def resume(self, segment_id: str) -> TrackedSegment | None:
        """The row of a segment ``moderate`` is handed again (an earlier run tracked it)."""

    async def by_task(self, task_id: str) -> TrackedSegment | None:
        """The segment whose current AMS task is ``task_id``."""

    async def in_state(self, state: str, due_by: float | None = None) -> list[TrackedSegment]:
        """Rows this instance works on in ``state`` (due by then, when given)."""

    async def refresh(self) -> None:
        """Learn of rows this instance must now settle (fleet mode: tasks of streams it
        took over); called by the poller every round."""

    async def add(
        self,
        segment: SegmentInfo,
        biz_type: str | None,
        clip: str,
        owned_clip: bool,
        excerpt: Excerpt,
        now: float,
    ) -> None:
        """Record the intent to submit a segment (state ``queued``)."""

    async def mark_submitting(self, segment_ids: list[str], now: float) -> None:
        """Before a Create call: its outcome is unknown until the answer is recorded."""

    async def mark_accepted(self, accepted: list[tuple[str, str, float]], now: float) -> None:
        """AMS accepted these (segment id, task id, due at): poll each from its due time."""

    async def requeue(self, segment_id: str, now: float, due_at: float, error: str) -> None:
        """Back to ``queued``."""

    async def mark_polled(
        self, segment_id: str, status: str | None, now: float, due_at: float, error: str = ""
    ) -> None:
        """A poll found the task still ``status``, or failed; next poll at ``due_at``."""

    async def finish(
        self, segment_id: str, verdict: Verdict, now: float, status: str | None = None
    ) -> bool:
        """Store the final verdict once: False when the segment was settled already."""

    async def confirm(self, segment_id: str) -> None:
        """The settled segment's verdict was handed on (recorded on the late path)."""

    async def unconfirmed(self) -> list[TrackedSegment]:
        """Settled segments whose verdict must be handed on again (another instance, or an
        earlier run, settled them and stopped before it had handed the verdict on)."""

    async def counts(self) -> dict[str, int]:
        """Rows per state."""


class TaskStore:
    """The ``ams_segments`` table, every change one transaction on the database thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, segment_id: str) -> TrackedSegment | None:
        """The segment's row, if it was ever handed to the engine."""

        def read(conn: sqlite3.Connection) -> TrackedSegment | None:
            row = conn.execute(
                "SELECT * FROM ams_segments WHERE segment_id = ?", (segment_id,)
            ).fetchone()
            return TrackedSegment.from_row(row) if row else None

        return await self._db.run(read)

    async def by_task(self, task_id: str) -> TrackedSegment | None:
        """The segment whose current AMS task is ``task_id``."""

        def read(conn: sqlite3.Connection) -> TrackedSegment | None:
            row = conn.execute(
                "SELECT * FROM ams_segments WHERE task_id = ?", (task_id,)
            ).fetchone()
            return TrackedSegment.from_row(row) if row else None

        return await self._db.run(read)

    async def resume(self, segment_id: str) -> TrackedSegment | None:
        """The segment's row: after a restart, ``moderate`` resumes what was tracked."""
        return await self.get(segment_id)

    async def refresh(self) -> None:
        """Nothing to learn: one instance tracks every row itself."""

    async def in_state(self, state: str, due_by: float | None = None) -> list[TrackedSegment]:
        """Rows in ``state`` (due by then, when given), oldest first."""

        def read(conn: sqlite3.Connection) -> list[TrackedSegment]:
            if due_by is None:
                rows = conn.execute(
                    "SELECT * FROM ams_segments WHERE state = ? ORDER BY created_at", (state,)
                )
            else:
                rows = conn.execute(
                    "SELECT * FROM ams_segments WHERE state = ? AND due_at <= ?"
                    " ORDER BY due_at, created_at",
                    (state, due_by),
                )
            return [TrackedSegment.from_row(r) for r in rows.fetchall()]

        return await self._db.run(read)

    async def add(
        self,
        segment: SegmentInfo,
        biz_type: str | None,
        clip: str,
        owned_clip: bool,
        excerpt: Excerpt,
        now: float,
    ) -> None:
        """Record the intent to submit a segment (state ``queued``)."""
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT INTO ams_segments (segment_id, stream_id, segment, biz_type, clip,"
                " owned_clip, duration, clip_offset, excerpt, state, created_at, updated_at,"
                " due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    segment.id,
                    segment.stream_id,
                    segment.to_json(),
                    biz_type,
                    clip,
                    int(owned_clip),
                    excerpt.duration,
                    excerpt.start,
                    excerpt.to_json(),
                    SegmentState.QUEUED,
                    now,
                    now,
                    now,
                ),
            )
        )

    async def _update(self, segment_id: str, now: float, **values: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        params = [*values.values(), now, segment_id]
        await self._db.run(
            lambda conn: conn.execute(
                f"UPDATE ams_segments SET {columns}, updated_at = ? WHERE segment_id = ?",
                params,
            )
        )

    async def mark_submitting(self, segment_ids: list[str], now: float) -> None:
        """Before a Create call: its outcome is unknown until the answer is recorded."""

        def update(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE ams_segments SET state = ?, submit_attempts = submit_attempts + 1,"
                " submitted_at = ?, updated_at = ? WHERE segment_id = ?",
                [(SegmentState.SUBMITTING, now, now, sid) for sid in segment_ids],
            )

        await self._db.run(update)

    async def mark_accepted(self, accepted: list[tuple[str, str, float]], now: float) -> None:
        """AMS accepted these (segment id, task id, due at): poll each from its due time."""

        def update(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE ams_segments SET state = ?, task_id = ?, ams_status = 'PENDING',"
                " deliveries = deliveries + 1, polls = 0, accepted_at = ?, due_at = ?,"
                " updated_at = ? WHERE segment_id = ?",
                [
                    (SegmentState.PENDING, task_id, now, due_at, now, segment_id)
                    for segment_id, task_id, due_at in accepted
                ],
            )

        await self._db.run(update)

    async def requeue(self, segment_id: str, now: float, due_at: float, error: str) -> None:
        """Back to ``queued`` (throttled, not found after an unknown outcome, or re-delivery)."""
        await self._update(
            segment_id, now, state=SegmentState.QUEUED, due_at=due_at, last_error=error
        )

    async def mark_polled(
        self, segment_id: str, status: str | None, now: float, due_at: float, error: str = ""
    ) -> None:
        """A poll found the task still ``status`` (None: unchanged), or failed with ``error``;
        next poll at ``due_at``."""

        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE ams_segments SET ams_status = coalesce(?, ams_status), polls = polls + 1,"
                " due_at = ?, last_error = ?, updated_at = ? WHERE segment_id = ?",
                (status, due_at, error, now, segment_id),
            )

        await self._db.run(update)

    async def confirm(self, segment_id: str) -> None:
        """Nothing to do: one instance, whose verdicts nobody else hands on."""

    async def unconfirmed(self) -> list[TrackedSegment]:
        """None: see ``confirm``."""
        return []

    async def finish(
        self, segment_id: str, verdict: Verdict, now: float, status: str | None = None
    ) -> bool:
        """Store the final verdict: ``done`` when judged, ``failed`` (with reason) otherwise;
        False (nothing written) when the segment was settled already."""
        values = final_values(verdict, status)
        columns = ", ".join(f"{name} = ?" for name in values)
        params = [*values.values(), now, segment_id, *SegmentState.TERMINAL]

        def update(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"UPDATE ams_segments SET {columns}, updated_at = ?"
                " WHERE segment_id = ? AND state NOT IN (?, ?)",
                params,
            )
            return cursor.rowcount > 0

        return await self._db.run(update)

    async def counts(self) -> dict[str, int]:
        """Rows per state."""

        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT state, count(*) FROM ams_segments GROUP BY state")
            return {str(r[0]): int(r[1]) for r in rows.fetchall()}

        return await self._db.run(read)


def final_values(verdict: Verdict, status: str | None) -> dict[str, Any]:
    """The columns a settled segment's row takes (both stores)."""
    failed = verdict.outcome is Outcome.FAILED
    values: dict[str, Any] = {
        "state": SegmentState.FAILED if failed else SegmentState.DONE,
        "verdict": json.dumps(verdict.to_json()),
        "last_error": verdict.reason if failed else "",
    }
    if status is not None:
        values["ams_status"] = status
    if verdict.task_id:
        values["task_id"] = verdict.task_id
    return values
