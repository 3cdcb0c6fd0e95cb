"""Units of work: everything one judged segment writes, in one transaction with one fence
check, and the units of an instance's streams committed together.

A segment's outcome is written to several tables: its result, its incident and incident
segment, the alert in the outbox, the open-incident journal. Written one transaction each,
every one with its own fence check, that is a dozen statements a segment. Inside
``WriteBatches.unit(stream_id)`` (``Outcomes.handle`` opens one per segment) the shared
stores do not write at once: ``write`` keeps each write, with the fence it carries, in the
unit, and the unit is written when it closes, as one transaction that checks every fence
once (``SELECT … FOR SHARE`` of the streams' rows, in ``stream_id`` order, the order the
lease renewal locks them in too: no lock-order deadlock between them).

With a ``window`` (``state.write_batch_seconds``), the units that close within it, of any
of this instance's streams, are written in one transaction: the fences of all their streams
in one statement, then the writes of every unit whose fence holds. A unit whose stream moved
on is refused alone (``StaleWrite`` to its caller, and ``on_stale`` told); the others commit.
The cost: an alert reaches the outbox up to ``window`` later.

What must not be lost is not: a unit the database cannot take now (``StorageUnavailable``)
goes to the spool as one write, retried as one transaction; while the spool holds writes,
units go through it too, behind them, so the order of an incident's writes is kept. A unit
refused for another reason than the storage or its fence (a bug: a constraint) is written
again one write per transaction, as without units, so one bad write loses only itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from streamguard.state.db import StateError, StorageUnavailable
from streamguard.state.postgres.database import Connection, PgDatabase, StaleWrite
from streamguard.state.postgres.fleet import Fence, check_fence, fences_now, moved
from streamguard.state.spool import DIRECT, Spool, Writes

__all__ = ["WriteBatches", "write"]

log = logging.getLogger(__name__)

T = TypeVar("T")

Op = Callable[[Connection], Awaitable[Any]]


@dataclass(slots=True)
class _Write:
    fn: Op
    fence: Fence | None
    then: Callable[[Any], None] | None
    best_effort: bool
    """A failure is logged, never raised (the incident history)."""


@dataclass(slots=True)
class _Unit:
    db: PgDatabase
    stream_id: str
    writes: list[_Write] = field(default_factory=list)


_CURRENT: ContextVar[_Unit | None] = ContextVar("streamguard.postgres.unit", default=None)


async def write(
    db: PgDatabase,
    fn: Callable[[Connection], Awaitable[T]],
    *,
    fence: Fence | None = None,
    then: Callable[[T], None] | None = None,
    best_effort: bool = False,
) -> bool:
    """Write ``fn`` under ``fence`` (refused, ``StaleWrite``, when the stream's lease moved
    on): kept in the open unit of work, if one is open on ``db`` (written when it closes:
    True), else at once in its own transaction (False). ``then`` is given ``fn``'s result
    once it is committed."""
    unit = _CURRENT.get()
    if unit is not None and unit.db is db:
        unit.writes.append(_Write(fn, fence, then, best_effort))
        return True
    await _alone(db, _Write(fn, fence, then, best_effort))
    return False


async def _alone(db: PgDatabase, one: _Write) -> None:
    """One write in its own transaction, as without units."""

    async def run(conn: Connection) -> Any:
        if one.fence is not None:
            await check_fence(conn, one.fence)
        return await one.fn(conn)

    try:
        result = await db.run(run)
    except StateError as exc:
        if not one.best_effort or isinstance(exc, StaleWrite):
            raise
        log.error("a best-effort write was not written: %s", exc)
        return
    if one.then is not None:
        one.then(result)


async def _commit(db: PgDatabase, units: list[_Unit]) -> set[int]:
    """Write ``units`` in one transaction; return the indexes of those refused as stale
    (nothing of theirs written)."""

    async def run(conn: Connection) -> tuple[set[int], list[tuple[_Write, Any]]]:
        current = await fences_now(conn, [w.fence for u in units for w in u.writes if w.fence])
        stale = {
            n
            for n, unit in enumerate(units)
            if any(moved(w.fence, current) for w in unit.writes if w.fence is not None)
        }
        done = []
        for n, unit in enumerate(units):
            if n not in stale:
                for one in unit.writes:
                    done.append((one, await one.fn(conn)))
        return stale, done

    stale, done = await db.run(run)
    for one, result in done:
        if one.then is not None:
            one.then(result)
    return stale


async def _commit_alone(unit: _Unit) -> None:
    """One unit in its own transaction; written again write by write when refused for
    another reason than the storage or its fence."""
    try:
        stale = await _commit(unit.db, [unit])
    except StorageUnavailable:
        raise
    except StateError as exc:
        log.warning("a unit of work was refused (%s): written again write by write", exc)
        failed: StateError | None = None
        for one in unit.writes:
            try:
                await _alone(unit.db, one)
            except StorageUnavailable:
                raise
            except StateError as error:
                failed = failed or error
        if failed is not None:
            raise failed from exc
        return
    if stale:
        raise StaleWrite(unit.stream_id, None)


class WriteBatches:
    """Opens units of work (``unit``) and writes them, batched within ``window`` seconds
    (0: each unit at once, in its caller's task). ``async with`` runs the batching task
    (``state.write-batches``); closing writes what waits."""

    def __init__(
        self,
        db: PgDatabase,
        *,
        window: float = 0.0,
        writes: Writes = DIRECT,
        on_stale: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self.window = window
        self._writes = writes
        self.on_stale = on_stale
        self._pending: list[tuple[_Unit, asyncio.Future[bool]]] = []
        self._arrived = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        """Transactions that wrote units (a batch is one)."""
        self.units = 0
        """Units written (committed or refused as stale)."""

    async def __aenter__(self) -> Self:
        if self.window > 0:
            self._task = asyncio.create_task(self._run(), name="state.write-batches")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.drain()

    async def drain(self) -> None:
        """Write every unit waiting now and stop batching: from now on each unit is written
        at once, in its caller's task. The daemon drains before it gives its leases back
        (a unit still waiting then would be refused as stale: its segment lost)."""
        task, self._task = self._task, None
        self._closing = True
        self._closed.set()
        self._arrived.set()
        if task is not None:
            await task  # writes the units that joined the last window

    @asynccontextmanager
    async def unit(self, stream_id: str) -> AsyncIterator[None]:
        """Keep the shared stores' writes made inside, and write them as one unit when the
        block ends (also when it raises: what was done is recorded). Raises ``StaleWrite``
        when ``stream_id``'s lease moved on (nothing of the unit written)."""
        unit = _Unit(self._db, stream_id)
        token = _CURRENT.set(unit)
        try:
            yield
        except BaseException:
            _CURRENT.reset(token)
            if unit.writes:
                try:
                    await self._submit(unit)
                except StateError as exc:
                    log.error("the writes of a failed segment were not written: %s", exc)
            raise
        _CURRENT.reset(token)
        if unit.writes:
            await self._submit(unit)

    async def _submit(self, unit: _Unit) -> None:
        try:
            if isinstance(self._writes, Spool) and self._writes.depth:
                # Writes wait for the database: this one waits behind them, in order.
                await self._writes.write("segment", lambda: self._retry(unit))
                return
            try:
                await self._join(unit)
            except StorageUnavailable:
                await self._writes.write("segment", lambda: self._retry(unit))
        except StaleWrite:
            if self.on_stale is not None:
                self.on_stale(unit.stream_id)
            raise

    async def _retry(self, unit: _Unit) -> None:
        self.transactions += 1
        self.units += 1
        await _commit_alone(unit)

    async def _join(self, unit: _Unit) -> None:
        if self._task is None or self._task.done() or self._closing:
            await self._retry(unit)
            return
        future = asyncio.get_running_loop().create_future()
        self._pending.append((unit, future))
        self._arrived.set()
        if not await future:
            raise StaleWrite(unit.stream_id, None)

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            if not self._closing:
                try:  # the window, cut short by closing
                    async with asyncio.timeout(self.window):
                        await self._closed.wait()
                except TimeoutError:
                    pass
            await self._flush()
            if self._closing and not self._pending:
                return

    @property
    def waiting(self) -> int:
        """Units waiting for their batch's transaction now."""
        return len(self._pending)

    async def flush(self) -> None:
        """Write the units waiting now, without waiting for the end of the window."""
        await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._arrived.clear()
        if not batch:
            return
        self.transactions += 1
        self.units += len(batch)
        try:
            stale = await _commit(self._db, [unit for unit, _ in batch])
        except StorageUnavailable as exc:
            for unit, future in batch:
                self._settle(unit, future, exc)
        except StateError:
            # One unit's bug must not refuse the others: each on its own.
            for unit, future in batch:
                self._settle(unit, future, await _outcome(unit))
        except Exception as exc:  # a bug: told to every caller, none left waiting
            for unit, future in batch:
                self._settle(unit, future, exc)
        else:
            for n, (unit, future) in enumerate(batch):
                self._settle(unit, future, n not in stale)

    def _settle(
        self, unit: _Unit, future: asyncio.Future[bool], outcome: bool | BaseException
    ) -> None:
        """Tell the unit's caller how it went; when nobody waits any more (its caller was
        cancelled: the writes are written all the same), say what was not written."""
        if not future.done():
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
            return
        if outcome is True:
            return
        if outcome is False:
            log.error(
                "the writes of a segment of stream %s were refused as stale (its lease moved"
                " on) after its caller stopped waiting: not written",
                unit.stream_id,
                extra={"stream_id": unit.stream_id},
            )
            if self.on_stale is not None:
                self.on_stale(unit.stream_id)
            return
        log.error(
            "the writes of a segment of stream %s were not written after its caller stopped"
            " waiting: %s",
            unit.stream_id,
            outcome,
            extra={"stream_id": unit.stream_id},
        )


async def _outcome(unit: _Unit) -> bool | BaseException:
    """``_commit_alone``'s outcome: True written, False stale, or what it raised."""
    try:
        await _commit_alone(unit)
    except StaleWrite:
        return False
    except Exception as exc:
        return exc
    return True
