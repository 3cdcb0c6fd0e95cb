"""AMS task tracking in the shared database (fleet mode): the counterpart of
``state/ams_tasks.py``, so that a task in flight on an instance that died is settled by
another.

Each row carries what the SQLite store keeps (the ``SegmentInfo``, the clip, deadlines,
attempts) plus its stream, the instance that wrote it (``owner``) and the lease generation
it was written under. What is written, and when, is chosen so that tracking costs little:

- a segment ``queued`` lives in this instance's memory only: its clip is on this machine,
  so no other instance could send it anyway;
- ``mark_submitting`` writes the rows of a Create call in one transaction, before the call
  (an instance that dies during it leaves them ``submitting``: whoever settles them asks
  AMS with DescribeTasks before anything is sent again), ``mark_accepted`` their task ids in
  with the next transaction (not waited for: a row left ``submitting`` is looked up);
- polls (``mark_polled``) are scheduled in memory; ``in_state`` answers from memory;
- ``finish`` settles a row once, fenced (below), in one transaction; ``confirm`` marks it
  ``handed_on`` (with the next write) once its verdict was handed on.

Every ``scan_every`` seconds ``refresh`` adopts the open rows this instance must now settle
besides its own: those of the streams it holds a lease on (written by a previous owner, dead
or drained), and those of streams nobody holds (detached, or unclaimed) for ``grace``
seconds, so that no task waits for a dead machine; a row whose Create is not answered yet
only once that old, or when its writer's heartbeat is (a live previous owner may be waiting
for the answer). The same scan takes the rows settled ``grace`` seconds ago whose verdict
was never handed on (``unconfirmed``: their settler stopped first), to hand it on again.

**Settling is fenced and happens once.** ``finish`` updates the row only while it is open
(two instances, or a poll and a callback, never both settle it) and only when this instance
holds the stream's current lease (``check_fence``) or nobody has held it for ``grace``
seconds; otherwise it raises ``StaleWrite`` and the lease holder settles it. A stream
settled without a lease (an orphan) lends its last holder's fence (owner None when it was
released) to the late verdict's result write (``orphan_fence``), till it is handed on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import psycopg

from streamguard.core.excerpt import Excerpt
from streamguard.core.segment import SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.state.ams_tasks import SegmentState, TrackedSegment, final_values
from streamguard.state.db import StateError, StorageUnavailable
from streamguard.state.postgres.database import Connection, PgDatabase, StaleWrite
from streamguard.state.postgres.fleet import Fence, check_fence, fences_now, moved

__all__ = ["COMMIT_WINDOW", "GroupCommit", "PgTaskStore"]

log = logging.getLogger(__name__)

COMMIT_WINDOW = 0.5
"""Seconds a write waits for others to share its transaction."""

OPEN = (SegmentState.QUEUED, SegmentState.SUBMITTING, SegmentState.PENDING)

_COLUMNS = (
    "segment_id, stream_id, biz_type, clip, owned_clip, duration, clip_offset, state,"
    " task_id, ams_status, submit_attempts, deliveries, polls, created_at, submitted_at,"
    " accepted_at, updated_at, due_at, last_error, verdict, excerpt, segment"
)
"""In ``TrackedSegment``'s field order."""


Op = Callable[[Connection], Awaitable[Any]]


class GroupCommit:
    """Writes that share one transaction: the first write of a batch waits ``window``
    seconds for company, then commits them all, their fences checked in one statement (one
    refused by its fence leaves the others; see ``_at_once``), in the order of their keys
    (so two instances' batches lock rows in the same order and never deadlock). A write
    nobody needs to wait for goes ``later``: with the next batch. ``transactions`` and
    ``ops`` count what it did."""

    def __init__(self, db: PgDatabase, window: float) -> None:
        self._db = db
        self._window = window
        self._batch: list[_Pending] = []
        self._leading = False
        self._since = 0.0
        """When the oldest write of the batch was added (monotonic)."""
        self.transactions = 0
        self.ops: Counter[str] = Counter()

    async def run(self, key: str, op: Op, fence: Fence | None = None) -> Any:
        """``await op(connection)`` within the next shared transaction, under ``fence``
        (refused, ``StaleWrite``, when the stream's lease moved on); its result."""
        future = self._add(key, op, fence)
        if not self._leading:  # the first of a batch commits it
            self._leading = True
            try:
                await asyncio.sleep(self._window)
            finally:  # even when this caller is cancelled: the others wait for it
                batch, self._batch, self._leading = self._batch, [], False
                await self._commit(sorted(batch, key=lambda item: item.key))
        return await future

    def later(self, key: str, op: Op) -> None:
        """Write with the next batch, without waiting for it (a failure is logged)."""
        self._add(key, op, None).add_done_callback(_log_failure)

    async def flush(self, older_than: float = 0.0) -> None:
        """Commit the writes waiting for a batch nobody gathers (``later`` ones), once the
        oldest has waited ``older_than`` seconds."""
        if self._leading or not self._batch or time.monotonic() - self._since < older_than:
            return
        batch, self._batch = self._batch, []
        await self._commit(sorted(batch, key=lambda item: item.key))

    def _add(self, key: str, op: Op, fence: Fence | None) -> asyncio.Future[Any]:
        if not self._batch:
            self._since = time.monotonic()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append(_Pending(key, op, fence, future))
        self.ops[getattr(op, "__name__", "op")] += 1
        return future

    async def _commit(self, batch: list[_Pending]) -> None:
        self.transactions += 1
        try:
            try:
                outcomes = await self._db.run(lambda conn: _at_once(conn, batch))
            except StorageUnavailable:
                raise
            except StateError:  # a statement failed: each write in a savepoint of its own
                self.transactions += 1
                outcomes = await self._db.run(lambda conn: _one_by_one(conn, batch))
        except Exception as exc:  # the database is away: every write of the batch failed
            outcomes = [(None, exc)] * len(batch)
        except BaseException:  # cancelled mid-commit: nobody may wait for it forever
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StorageUnavailable("the write was interrupted"))
            raise
        for pending, (value, error) in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if error is None:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(error)


@dataclasses.dataclass(slots=True)
class _Pending:
    key: str
    op: Op
    fence: Fence | None
    future: asyncio.Future[Any]


Outcome = tuple[Any, BaseException | None]


async def _at_once(conn: Connection, batch: list[_Pending]) -> list[Outcome]:
    """Every write of ``batch`` in the transaction, without savepoints: the fences of all
    in one statement (``FOR SHARE``, in ``stream_id`` order), a write whose fence moved on
    refused alone. A write refusing on its own (``StateError`` raised by its code) does so
    before it writes anything; a statement that fails aborts the transaction, and the
    batch is written again one savepoint a write (``_one_by_one``)."""
    current = await fences_now(conn, [p.fence for p in batch if p.fence is not None])
    outcomes: list[Outcome] = []
    for pending in batch:
        fence = pending.fence
        if fence is not None and moved(fence, current):
            outcomes.append((None, StaleWrite(fence.stream_id, fence.generation)))
            continue
        try:
            outcomes.append((await pending.op(conn), None))
        except StateError as exc:
            outcomes.append((None, exc))
    return outcomes


async def _one_by_one(conn: Connection, batch: list[_Pending]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for pending in batch:
        try:
            async with conn.transaction():  # a savepoint
                if pending.fence is not None:
                    await check_fence(conn, pending.fence)
                outcomes.append((await pending.op(conn), None))
        except StateError as exc:
            outcomes.append((None, exc))
        except psycopg.Error as exc:
            outcomes.append((None, StateError(f"state database: {exc}")))
    return outcomes


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.warning("AMS task store: a write was not made: %s", exc)


class PgTaskStore:
    """``AmsTaskStore`` over the shared ``ams_tasks`` table; see the module docstring.

    ``fences`` is ``Fleet.fence``. Writes share transactions (``GroupCommit``, within
    ``commit_window`` seconds). ``queries`` counts this store's reads by kind (``scan``,
    ``read``) and ``writes`` its shared transactions: the benchmark's figures."""

    def __init__(
        self,
        db: PgDatabase,
        instance_id: str,
        fences: Callable[[str], Fence | None],
        *,
        grace: float,
        scan_every: float,
        commit_window: float = COMMIT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self.writes = GroupCommit(db, commit_window)
        self._window = commit_window
        self.instance_id = instance_id
        self._fences = fences
        self._grace = timedelta(seconds=grace)
        self._scan_every = scan_every
        self._clock = clock
        self._scanned_at: float | None = None
        self._rows: dict[str, TrackedSegment] = {}
        """The open rows this instance works on (its own and those it adopted)."""
        self._orphans: dict[str, Fence] = {}
        self._owed: dict[str, str] = {}  # segment -> stream: orphans' verdicts to hand on
        self._unconfirmed: list[TrackedSegment] = []
        self.queries: Counter[str] = Counter()
        self.adopted = 0
        """Open rows written by another instance (or an earlier run) that this one took."""

    def orphan_fence(self, stream_id: str) -> Fence | None:
        """The fence a late verdict of an orphaned stream's task is recorded under."""
        return self._orphans.get(stream_id)

    async def _run(self, fn: Callable[[Connection], Any]) -> Any:
        self.queries[fn.__name__] += 1
        return await self._db.run(fn)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, segment_id: str) -> TrackedSegment | None:
        """The segment's row: this instance's copy, else the shared table's."""
        row = self._rows.get(segment_id)
        if row is not None:
            return row
        return await self._one("segment_id", segment_id)

    async def resume(self, segment_id: str) -> TrackedSegment | None:
        """In fleet mode a stream's new owner cuts new segments: only this run's rows."""
        return self._rows.get(segment_id)

    async def by_task(self, task_id: str) -> TrackedSegment | None:
        """The segment whose current task is ``task_id`` (a callback: perhaps another
        instance's task, through a load balancer)."""
        for row in self._rows.values():
            if row.task_id == task_id:
                return row
        return await self._one("task_id", task_id)

    async def _one(self, column: str, value: str) -> TrackedSegment | None:
        async def read(conn: Connection) -> TrackedSegment | None:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM ams_tasks WHERE {column} = %s", (value,)
            )
            found = await cursor.fetchone()
            return None if found is None else _tracked(found)

        result: TrackedSegment | None = await self._run(read)
        return result

    async def in_state(self, state: str, due_by: float | None = None) -> list[TrackedSegment]:
        """This instance's open rows in ``state`` (due by then), oldest first."""
        rows = [
            r
            for r in self._rows.values()
            if r.state == state and (due_by is None or r.due_at <= due_by)
        ]
        if due_by is None:
            return sorted(rows, key=lambda r: r.created_at)
        return sorted(rows, key=lambda r: (r.due_at, r.created_at))

    async def refresh(self) -> None:
        """Write the task ids no other write carried within the commit window; adopt the
        open rows this instance must settle now, and take the settled ones to hand on again
        (``unconfirmed``), at most every ``scan_every`` seconds, in one transaction."""
        await self.writes.flush(older_than=self._window)  # task ids nothing else carried
        now = self._clock()
        if self._scanned_at is not None and now - self._scanned_at < self._scan_every:
            return
        self._scanned_at = now
        params = {"me": self.instance_id, "grace": self._grace, "mine": list(self._rows)}

        async def scan(conn: Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
            cursor = await conn.execute(_ADOPT, params)
            settled = await conn.execute(_UNCONFIRMED, params)
            return await cursor.fetchall(), await settled.fetchall()

        open_rows, settled_rows = await self._run(scan)
        for found in open_rows:
            row = _tracked(found)
            if row.state == SegmentState.QUEUED:
                # Its Create may or may not have been made: ask AMS before anything else.
                row = dataclasses.replace(row, state=SegmentState.SUBMITTING)
            self._rows[row.segment_id] = row
            self.adopted += 1
        self._take_unconfirmed(settled_rows)

    def _take_unconfirmed(self, settled: list[tuple[Any, ...]]) -> None:
        """Keep the settled rows whose verdict was not handed on within the grace period
        (their settler stopped first) for ``unconfirmed``, an orphan's with its fence; drop
        the orphan fences of streams held here now."""
        for stream_id in [s for s in self._orphans if self._fences(s) is not None]:
            del self._orphans[stream_id]
        for *found, owner, generation, held in settled:
            row = _tracked(tuple(found))
            if not held:
                self._orphans[row.stream_id] = Fence(row.stream_id, owner, generation or 0)
                self._owed[row.segment_id] = row.stream_id
            self._unconfirmed.append(row)

    async def unconfirmed(self) -> list[TrackedSegment]:
        """Settled rows to hand on again (taken by ``refresh``), each given out once."""
        rows, self._unconfirmed = self._unconfirmed, []
        return rows

    async def confirm(self, segment_id: str) -> None:
        """The settled row's verdict was handed on: written with the next batch (a row
        left unconfirmed by a crash is handed on again, once more at worst)."""
        stream_id = self._owed.pop(segment_id, None)
        if stream_id is not None and stream_id not in self._owed.values():
            self._orphans.pop(stream_id, None)  # its late verdicts are recorded

        async def confirm(conn: Connection) -> None:
            await conn.execute(_CONFIRM, (segment_id,))

        self.writes.later(segment_id, confirm)

    async def counts(self) -> dict[str, int]:
        """Rows per state, fleet-wide."""

        async def read(conn: Connection) -> dict[str, int]:
            cursor = await conn.execute("SELECT state, count(*) FROM ams_tasks GROUP BY state")
            return {str(r[0]): int(r[1]) for r in await cursor.fetchall()}

        result: dict[str, int] = await self._run(read)
        return result

    # -- writes --------------------------------------------------------------------------

    async def add(
        self,
        segment: SegmentInfo,
        biz_type: str | None,
        clip: str,
        owned_clip: bool,
        excerpt: Excerpt,
        now: float,
    ) -> None:
        """Queue the segment here (written at ``mark_submitting``)."""
        self._rows[segment.id] = TrackedSegment(
            segment.id, segment.stream_id, biz_type, clip, owned_clip, excerpt.duration,
            excerpt.start, SegmentState.QUEUED, None, None, 0, 0, 0, now, None, None, now, now,
            "", None, excerpt.to_json(), segment.to_json(),
        )  # fmt: skip

    def _change(self, segment_id: str, **values: Any) -> TrackedSegment | None:
        row = self._rows.get(segment_id)
        if row is None:
            return None
        row = dataclasses.replace(row, **values)
        self._rows[segment_id] = row
        return row

    async def mark_submitting(self, segment_ids: list[str], now: float) -> None:
        """Write the Create call's rows, ``submitting``, in one transaction."""
        rows = []
        for segment_id in segment_ids:
            row = dataclasses.replace(
                self._rows[segment_id],
                state=SegmentState.SUBMITTING,
                submit_attempts=self._rows[segment_id].submit_attempts + 1,
                submitted_at=now,
                updated_at=now,
            )
            self._rows[segment_id] = row
            fence = self._fences(row.stream_id)
            values = dataclasses.astuple(row)
            rows.append((*values, self.instance_id, fence.generation if fence else None))

        rows.sort()

        async def upsert(conn: Connection) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(_UPSERT, rows)

        await self.writes.run(rows[0][0], upsert)

    async def mark_accepted(self, accepted: list[tuple[str, str, float]], now: float) -> None:
        """AMS accepted these (segment id, task id, due at): one transaction for all."""
        for segment_id, task_id, due_at in accepted:
            row = self._rows.get(segment_id)
            self._change(
                segment_id,
                state=SegmentState.PENDING,
                task_id=task_id,
                ams_status="PENDING",
                deliveries=(row.deliveries if row else 0) + 1,
                polls=0,
                accepted_at=now,
                due_at=due_at,
                updated_at=now,
            )

        async def accept(conn: Connection) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "UPDATE ams_tasks SET state = 'pending', task_id = %s,"
                    " ams_status = 'PENDING', deliveries = deliveries + 1, accepted_at = %s,"
                    " due_at = %s, updated_at = %s WHERE segment_id = %s"
                    " AND state IN ('queued', 'submitting')",
                    [(task, now, due, now, sid) for sid, task, due in sorted(accepted)],
                )

        # Not waited for: whoever takes a row still ``submitting`` over asks AMS for its task.
        self.writes.later(min(accepted)[0], accept)

    async def requeue(self, segment_id: str, now: float, due_at: float, error: str) -> None:
        """Back to ``queued`` here; the shared row says so too (it was written)."""
        values = {"state": SegmentState.QUEUED, "due_at": due_at, "last_error": error}
        self._change(segment_id, updated_at=now, **values)

        async def requeue(conn: Connection) -> None:
            await conn.execute(
                "UPDATE ams_tasks SET state = 'queued', due_at = %s, last_error = %s,"
                " updated_at = %s, written_at = now()"
                " WHERE segment_id = %s AND state IN ('submitting', 'pending')",
                (due_at, error, now, segment_id),
            )

        await self.writes.run(segment_id, requeue)

    async def mark_polled(
        self, segment_id: str, status: str | None, now: float, due_at: float, error: str = ""
    ) -> None:
        """Schedule the next poll (here only: whoever takes the row over polls at once)."""
        row = self._rows.get(segment_id)
        if row is not None:
            self._change(
                segment_id,
                ams_status=status or row.ams_status,
                polls=row.polls + 1,
                due_at=due_at,
                last_error=error,
                updated_at=now,
            )

    async def finish(
        self, segment_id: str, verdict: Verdict, now: float, status: str | None = None
    ) -> bool:
        """Settle the row once, fenced (see the module docstring): False when it was settled
        already; ``StaleWrite`` when another instance holds its stream."""
        row = self._rows.get(segment_id) or await self._one("segment_id", segment_id)
        if row is None:
            return False
        values = final_values(verdict, status)
        fence = self._fences(row.stream_id)
        params = {**values, "now": now, "id": segment_id, "me": self.instance_id}
        params.setdefault("ams_status", None)
        params.setdefault("task_id", None)
        grace = self._grace

        async def settle(conn: Connection) -> tuple[bool, Fence | None]:
            orphan = None
            if fence is None:
                orphan = await _orphaned(conn, row.stream_id, segment_id, grace)
            cursor = await conn.execute(_SETTLE, params)
            return cursor.rowcount > 0, orphan

        try:
            settled, orphan = await self.writes.run(segment_id, settle, fence)
        except StaleWrite:
            self._rows.pop(segment_id, None)  # not this instance's to settle any more
            raise
        self._rows.pop(segment_id, None)
        if orphan is not None and settled:
            self._orphans[row.stream_id] = orphan
            self._owed[segment_id] = row.stream_id
        return bool(settled)


async def _orphaned(conn: Connection, stream_id: str, segment_id: str, grace: timedelta) -> Fence:
    """Whether nobody has held the stream for ``grace`` (and the row is that old): the
    fence its result is recorded under; else ``StaleWrite`` (its lease holder settles).
    The row is locked for update here (not shared: two settlers would each wait for the
    other's share lock to update it), so a second settler waits and then finds it settled."""
    cursor = await conn.execute(
        "SELECT d.owner, d.generation, d.owner IS NOT NULL AND d.lease_until > now() - %s,"
        " t.written_at > now() - %s"
        " FROM ams_tasks AS t LEFT JOIN desired_streams AS d ON d.stream_id = t.stream_id"
        " WHERE t.segment_id = %s FOR UPDATE OF t",
        (grace, grace, segment_id),
    )
    found = await cursor.fetchone()
    if found is None:
        raise StaleWrite(stream_id, None)
    owner, generation, held, young = found
    if held or young:
        raise StaleWrite(stream_id, None)
    return Fence(stream_id, owner, generation or 0)  # owner None: released, unclaimed


def _tracked(row: tuple[Any, ...]) -> TrackedSegment:
    return TrackedSegment(*row)


_UPSERT = f"""
INSERT INTO ams_tasks ({_COLUMNS}, owner, generation)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
    %s, %s)
ON CONFLICT (segment_id) DO UPDATE SET state = excluded.state,
    submit_attempts = excluded.submit_attempts, submitted_at = excluded.submitted_at,
    updated_at = excluded.updated_at, written_at = now()
WHERE ams_tasks.state NOT IN ('done', 'failed')
"""

_SETTLE = """
UPDATE ams_tasks SET state = %(state)s, verdict = %(verdict)s, last_error = %(last_error)s,
    ams_status = coalesce(%(ams_status)s, ams_status), task_id = coalesce(%(task_id)s, task_id),
    updated_at = %(now)s, settled_by = %(me)s, handed_on = false, settled_at = now()
WHERE segment_id = %(id)s AND state NOT IN ('done', 'failed')
"""
"""Settle once: a row settled already (by another instance, or a callback) stays as it is.
Its verdict is then handed on, and the row confirmed (``handed_on``)."""

_CONFIRM = "UPDATE ams_tasks SET handed_on = true WHERE segment_id = %s"

_UNCONFIRMED = f"""
WITH due AS (
    SELECT t.segment_id, t.stream_id FROM ams_tasks AS t
    LEFT JOIN desired_streams AS d ON d.stream_id = t.stream_id
    WHERE NOT t.handed_on AND t.settled_at < now() - %(grace)s
      AND ((d.owner = %(me)s AND d.lease_until > now())
        OR d.stream_id IS NULL OR d.owner IS NULL OR d.lease_until < now() - %(grace)s)
    ORDER BY t.settled_at
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE ams_tasks AS t SET settled_at = now(), settled_by = %(me)s
FROM due LEFT JOIN desired_streams AS d ON d.stream_id = due.stream_id
WHERE t.segment_id = due.segment_id
RETURNING {", ".join("t." + c.strip() for c in _COLUMNS.split(","))},
    d.owner, d.generation, coalesce(d.owner = %(me)s AND d.lease_until > now(), false)
"""
"""Settled rows not handed on for the grace period, of a stream held here or by nobody:
taken (for another grace period) to hand their verdicts on again."""

_ADOPT = """
SELECT t.segment_id, t.stream_id, t.biz_type, t.clip, t.owned_clip, t.duration,
    t.clip_offset, t.state, t.task_id, t.ams_status, t.submit_attempts, t.deliveries, t.polls,
    t.created_at, t.submitted_at, t.accepted_at, t.updated_at, t.due_at, t.last_error,
    t.verdict, t.excerpt, t.segment
FROM ams_tasks AS t LEFT JOIN desired_streams AS d ON d.stream_id = t.stream_id
WHERE t.state IN ('queued', 'submitting', 'pending')
  AND NOT (t.segment_id = ANY(%(mine)s::text[]))
  AND ((d.owner = %(me)s AND d.lease_until > now()
        AND (t.state = 'pending' OR t.owner = %(me)s OR t.written_at < now() - %(grace)s
            OR NOT EXISTS (SELECT 1 FROM fleet_instances AS f
                WHERE f.instance_id = t.owner AND f.heartbeat_at > now() - %(grace)s)))
    OR (t.written_at < now() - %(grace)s
        AND (d.stream_id IS NULL OR d.owner IS NULL OR d.lease_until < now() - %(grace)s)))
ORDER BY t.created_at
"""
"""Open rows this instance must settle besides its own: of a stream it holds, or of one
nobody has held for the grace period. A row not yet accepted (its Create perhaps still in
flight on a live previous owner, draining or shedding) is taken over only once written
that long ago, or when its writer is gone, or was this instance (an earlier run)."""
