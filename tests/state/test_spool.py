"""The spool and the stores on a disk that really fills (a small tmpfs): writes the disk
refuses wait in memory, in order, bounded, and are written once it takes them again."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamguard.core.backoff import Backoff
from streamguard.core.verdict import Outcome
from streamguard.state.db import Database, StateError, StorageUnavailable
from streamguard.state.outbox import MessageKind, Outbox
from streamguard.state.results import ResultQuery, Results
from streamguard.state.spool import Spool, SpoolState
from tests.state.small_disk import SmallDisk, small_disk
from tests.state.test_results import segment, verdict

QUICK = Backoff(initial=0.05, maximum=0.2, multiplier=2.0, jitter=0.0)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", "2m") as mounted:
        yield mounted


async def written(spool: Spool) -> None:
    async with asyncio.timeout(10):
        await spool.wait_written()


async def add_alert(outbox: Outbox, message_id: str) -> None:
    await outbox.add(MessageKind.ALERT, message_id, "t/a", "{}")


class Reports:
    """What the spool told its reporter."""

    def __init__(self) -> None:
        self.got: list[tuple[SpoolState, str]] = []

    async def __call__(self, state: SpoolState, detail: str) -> None:
        self.got.append((state, detail))

    @property
    def states(self) -> list[SpoolState]:
        return [state for state, _ in self.got]


async def test_a_commit_the_full_disk_refused_leaves_the_database_usable(
    disk: SmallDisk,
) -> None:
    async with Database(disk.path / "s.db") as db:
        await db.migrate("demo", ["CREATE TABLE t (x TEXT)"])
        disk.fill()
        for _ in range(3):  # again and again: no transaction may be left open
            with pytest.raises(StorageUnavailable, match="full"):
                await db.run(lambda c: c.execute("INSERT INTO t VALUES (?)", ("x" * 50_000,)))
        disk.free()
        await db.run(lambda c: c.execute("INSERT INTO t VALUES ('after')"))
        rows = await db.run(lambda c: c.execute("SELECT x FROM t").fetchall())
    assert [r[0] for r in rows] == ["after"]


async def test_results_and_messages_wait_in_order_and_are_written_when_the_disk_returns(
    disk: SmallDisk,
) -> None:
    reports = Reports()
    async with Database(disk.path / "s.db") as db, Spool(retry=QUICK) as spool:
        spool.report_to(reports)
        results, outbox = Results(db, spool), Outbox(db)
        await outbox.open()
        disk.fill()
        ids = []
        for seq in range(20):
            seg = segment(seq)
            await results.record("room", seg, verdict(seg, Outcome.MODERATED), "none")
            message_id = f"alert-{seq}"
            ids.append(message_id)
            await spool.write("alert", functools.partial(add_alert, outbox, message_id))
        assert spool.degraded
        assert spool.depth == 40
        ok, why = await spool.check()
        assert not ok
        assert "40 write(s) wait in memory" in why
        assert outbox.depth == 0  # nothing counted that is not written
        assert reports.states == [SpoolState.UNWRITABLE]
        disk.free()
        await written(spool)
        assert spool.depth == 0
        assert (await spool.check())[0]
        recorded = await results.query(ResultQuery(limit=1000))
        assert [r["segment"]["seq"] for r in recorded] == list(range(20))
        assert [m.message_id for m in await outbox.peek(100)] == ids  # in the order written
        assert outbox.depth == 20
        assert reports.states == [SpoolState.UNWRITABLE, SpoolState.RESTORED]
        assert "40 waiting write(s) written, 0 lost" in reports.got[-1][1]
        assert sum(spool.lost.values()) == 0


async def test_what_overflows_the_bound_is_lost_counted_and_reported(disk: SmallDisk) -> None:
    reports = Reports()
    async with Database(disk.path / "s.db") as db, Spool(limit=5, retry=QUICK) as spool:
        spool.report_to(reports)
        results = Results(db, spool)
        disk.fill()
        for seq in range(8):
            seg = segment(seq)
            await results.record("room", seg, verdict(seg, Outcome.MODERATED), "none")
        assert spool.depth == 5
        assert spool.lost == {"result": 3}
        assert "3 lost" in (await spool.check())[1]
        disk.free()
        await written(spool)
        recorded = await results.query(ResultQuery(limit=100))
    # The first five waited and were written; the last three found the spool full.
    assert [r["segment"]["seq"] for r in recorded] == [0, 1, 2, 3, 4]
    assert reports.states == [SpoolState.UNWRITABLE, SpoolState.RESTORED, SpoolState.LOST]
    assert "3 result" in reports.got[-1][1]


async def test_a_write_that_fails_for_another_reason_is_raised_not_kept(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db, Spool(retry=QUICK) as spool:
        await db.migrate("demo", ["CREATE TABLE t (x INTEGER UNIQUE)"])
        await spool.write("result", lambda: db.run(lambda c: c.execute("INSERT INTO t VALUES (1)")))
        with pytest.raises(StateError, match="UNIQUE"):
            await spool.write(
                "result", lambda: db.run(lambda c: c.execute("INSERT INTO t VALUES (1)"))
            )
        assert not spool.degraded
        assert spool.depth == 0


async def test_closing_with_the_disk_still_full_counts_what_is_left_as_lost(
    disk: SmallDisk,
) -> None:
    async with Database(disk.path / "s.db") as db:
        spool = Spool(retry=QUICK)
        async with spool:
            results = Results(db, spool)
            disk.fill()
            seg = segment(0)
            await results.record("room", seg, verdict(seg, Outcome.MODERATED), "none")
            assert spool.depth == 1
        assert spool.lost == {"result": 1}
        assert spool.depth == 0
        disk.free()


async def test_acknowledged_messages_the_disk_will_not_delete_are_not_sent_again(
    disk: SmallDisk,
) -> None:
    async with Database(disk.path / "s.db") as db:
        outbox = Outbox(db)
        await outbox.open()
        for n in range(3):
            await outbox.add(MessageKind.ALERT, f"m{n}", "t/a", "x" * 3000)
        first = await outbox.peek(2)
        disk.fill()
        await outbox.remove([m.seq for m in first])  # the delete is refused: no error
        assert outbox.depth == 1
        assert [m.message_id for m in await outbox.peek(10)] == ["m2"]
        disk.free()
        await outbox.settle()
        with sqlite3.connect(disk.path / "s.db") as conn:
            left = [r[0] for r in conn.execute("SELECT message_id FROM alerts_outbox")]
    assert left == ["m2"]
