"""The shared AMS task store on a real PostgreSQL: a dead owner's tasks in flight are adopted
and settled by the stream's new owner, once; the stale owner's settle is refused by
generation; two instances settling one task at once settle it once; a task of a stream
nobody holds waits for the grace period, then any instance settles it and records its
result under the fence the orphan lends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.excerpt import Excerpt
from streamguard.core.segment import SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.engines.ams.clips import ClipStore
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.settle import Settler
from streamguard.state.ams_tasks import SegmentState
from streamguard.state.desired import Origin
from streamguard.state.postgres.ams_tasks import PgTaskStore
from streamguard.state.postgres.database import PgDatabase, StaleWrite
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fence
from streamguard.state.postgres.results import PgResults
from streamguard.testing.alerts import risky, segment, stream
from tests.support.fleet import holder, take
from tests.support.waiting import eventually


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


def store(
    db: PgDatabase,
    instance: str,
    fences: Callable[[str], Fence | None] = lambda stream_id: None,
    grace: float = 60.0,
) -> PgTaskStore:
    return PgTaskStore(db, instance, fences, grace=grace, scan_every=0.0, commit_window=0.05)


async def in_flight(tasks: PgTaskStore, info: SegmentInfo, task_id: str) -> None:
    """Track a segment as the engine does up to AMS's acceptance of its task."""
    await tasks.add(info, "biz", f"/clips/{info.id}.wav", True, Excerpt.whole(15.0), 100.0)
    await tasks.mark_submitting([info.id], 100.0)
    await tasks.mark_accepted([(info.id, task_id, 101.0)], 100.5)
    await tasks.writes.flush()  # task ids go with the next write: now


def rows(pg_url: str) -> dict[str, tuple[str, str, int | None, str | None]]:
    with psycopg.connect(pg_url) as conn:
        found = conn.execute(
            "SELECT segment_id, state, owner, generation, settled_by FROM ams_tasks"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in found}


async def test_the_new_owner_settles_a_dead_owners_task_once_and_the_stale_owner_cannot(
    db: PgDatabase, pg_url: str
) -> None:
    await PgDesiredStreams(db).put(stream("s1"), Origin.API)
    old = await holder(db, "old")
    await take(old, "s1")
    old_tasks = store(db, "old", old.fence)
    info = segment("s1", 0).info()
    await in_flight(old_tasks, info, "task-1")
    assert rows(pg_url)[info.id] == ("pending", "old", old.fences["s1"], None)

    new = await holder(db, "new")  # "old" stops renewing: it died
    await take(new, "s1")
    new_tasks = store(db, "new", new.fence)
    assert await new_tasks.in_state(SegmentState.PENDING) == []
    await new_tasks.refresh()
    (adopted,) = await new_tasks.in_state(SegmentState.PENDING)
    assert (adopted.segment_id, adopted.task_id, adopted.segment()) == (info.id, "task-1", info)
    assert new_tasks.adopted == 1

    verdict = risky(segment("s1", 0))
    with pytest.raises(StaleWrite):  # it still thinks it holds generation 1
        await old_tasks.finish(info.id, verdict, 200.0, "FINISH")
    assert rows(pg_url)[info.id][0] == "pending"
    assert await old_tasks.in_state(SegmentState.PENDING) == []  # no longer its to poll

    assert await new_tasks.finish(info.id, verdict, 200.0, "FINISH") is True
    assert await new_tasks.finish(info.id, verdict, 201.0, "FINISH") is False
    assert rows(pg_url)[info.id] == ("done", "old", old.fences["s1"], "new")
    settled = await new_tasks.get(info.id)
    assert settled is not None
    assert settled.stored_verdict() == verdict.to_json()


async def test_two_instances_settling_the_same_tasks_at_once_settle_each_once(
    db: PgDatabase, pg_url: str
) -> None:
    # A stream detached while its tasks were in flight: nobody holds it, so after the grace
    # period (none here) any instance may settle them; both try, on their own connections.
    writer = store(db, "gone", grace=0.0)
    infos = [segment("gone-stream", n).info() for n in range(12)]
    for n, info in enumerate(infos):
        await in_flight(writer, info, f"task-{n}")
    async with PgDatabase(pg_url) as other_db:
        a, b = store(db, "a", grace=0.0), store(other_db, "b", grace=0.0)
        outcomes = await asyncio.gather(
            *(
                tasks.finish(info.id, risky(segment("gone-stream", n)), 300.0, "FINISH")
                for n, info in enumerate(infos)
                for tasks in (a, b)
            )
        )
    for n in range(len(infos)):
        assert sorted(outcomes[2 * n : 2 * n + 2]) == [False, True]
    settlers = [settled_by for _, _, _, settled_by in rows(pg_url).values()]
    assert set(settlers) <= {"a", "b"}
    assert len(settlers) == len(infos)
    assert all(state == "done" for state, _, _, _ in rows(pg_url).values())


async def test_an_orphaned_task_waits_for_the_grace_period_then_anyone_settles_it(
    db: PgDatabase, pg_url: str
) -> None:
    await PgDesiredStreams(db).put(stream("s3", room="room-3"), Origin.API)
    dead = await holder(db, "dead")
    await take(dead, "s3")
    generation = dead.fences["s3"]
    info = segment("s3", 0).info()
    await in_flight(store(db, "dead", dead.fence), info, "task-3")
    # "dead" stops renewing and nobody claims the stream (no live instance runs claims).

    patient = store(db, "patient", grace=3600.0)
    await patient.refresh()
    assert await patient.in_state(SegmentState.PENDING) == []  # within its grace period
    verdict = risky(segment("s3", 0))
    with pytest.raises(StaleWrite):
        await patient.finish(info.id, verdict, 400.0, "FINISH")

    prompt_fleet = await holder(db, "prompt")  # joined, claiming nothing yet
    prompt = store(db, "prompt", prompt_fleet.fence, grace=0.5)

    async def adopted() -> bool:
        await prompt.refresh()
        return bool(await prompt.in_state(SegmentState.PENDING))

    await eventually(adopted, 60, 0.1)
    assert await prompt.finish(info.id, verdict, 400.0, "FINISH") is True
    assert rows(pg_url)[info.id][3] == "prompt"
    # The late verdict's result is recorded under the fence the orphan lends (its last
    # holder's): the stream was not claimed meanwhile.
    assert prompt.orphan_fence("s3") == Fence("s3", "dead", generation)
    results = PgResults(db, prompt.orphan_fence)
    await results.record("room-3", info, verdict, "high")
    assert await results.owners("s3") == [(info.id, "dead", generation)]
    await take(prompt_fleet, "s3")  # claimed: its own fence from now on, the orphan's goes
    await prompt.refresh()
    assert prompt.orphan_fence("s3") is None


async def test_settles_share_a_transaction_and_a_refused_one_leaves_the_others(
    db: PgDatabase, pg_url: str
) -> None:
    await PgDesiredStreams(db).put(stream("s4"), Origin.API)
    held = await holder(db, "held", lease=60.0)
    await take(held, "s4")
    tasks = store(db, "held", held.fence)
    ours = [segment("s4", n).info() for n in range(3)]
    young = segment("elsewhere", 0).info()  # a stream nobody holds, its row just written
    for n, info in enumerate([*ours, young]):
        await in_flight(tasks, info, f"task-{n}")
    before = tasks.writes.transactions
    outcomes = await asyncio.gather(
        *(tasks.finish(i.id, risky(segment("s4", n)), 500.0) for n, i in enumerate(ours)),
        tasks.finish(young.id, risky(segment("elsewhere", 0)), 500.0),
        return_exceptions=True,
    )
    assert outcomes[:3] == [True, True, True]
    assert isinstance(outcomes[3], StaleWrite)
    assert tasks.writes.transactions == before + 1  # one transaction for the four
    states = rows(pg_url)
    assert [states[i.id][0] for i in ours] == ["done"] * 3
    assert states[young.id][0] == "pending"


async def test_a_released_streams_orphaned_task_is_settled_and_its_result_recorded(
    db: PgDatabase, pg_url: str
) -> None:
    # A clean stop (or shedding) released the stream: its owner is NULL, and nobody claims it.
    await PgDesiredStreams(db).put(stream("s9", room="room-9"), Origin.API)
    gone = await holder(db, "gone", lease=60.0)
    await take(gone, "s9")
    generation = gone.fences["s9"]
    info = segment("s9", 0).info()
    await in_flight(store(db, "gone", gone.fence), info, "task-9")
    await gone.release(["s9"])

    prompt = store(db, "prompt", grace=0.5)

    async def adopted() -> bool:
        await prompt.refresh()
        return bool(await prompt.in_state(SegmentState.PENDING))

    await eventually(adopted, 60, 0.1)
    verdict = risky(segment("s9", 0))
    assert await prompt.finish(info.id, verdict, 400.0, "FINISH") is True
    assert prompt.orphan_fence("s9") == Fence("s9", None, generation)
    results = PgResults(db, prompt.orphan_fence)
    await results.record("room-9", info, verdict, "high")  # was refused: StaleWrite
    assert await results.owners("s9") == [(info.id, None, generation)]
    await prompt.confirm(info.id)  # the late verdict is recorded: the orphan fence goes
    assert prompt.orphan_fence("s9") is None


async def test_a_verdict_settled_but_not_handed_on_is_handed_on_again_by_the_next_owner(
    db: PgDatabase, pg_url: str, tmp_path: Path
) -> None:
    # "first" settles a task, but is cancelled (a shutdown) while the settle commits: the
    # row is settled, its verdict reaches nobody. Then "first" dies; "second" takes the
    # stream and, after the grace period, hands the verdict on: its result is recorded.
    await PgDesiredStreams(db).put(stream("s5", room="room-5"), Origin.API)
    first_fleet = await holder(db, "first")
    await take(first_fleet, "s5")
    first = store(db, "first", first_fleet.fence, grace=0.5)
    info = segment("s5", 0).info()
    await in_flight(first, info, "task-5")
    row = await first.get(info.id)
    assert row is not None
    verdict = risky(segment("s5", 0))
    heard: list[str] = []

    async def first_late(late: Verdict, _: SegmentInfo | None) -> None:
        heard.append(late.segment_id)

    config = AmsEngineConfig(delivery_listen="127.0.0.1:0")
    async with (
        ClipServer(tmp_path / "clips", b"key") as server,
        ClipStore(config, tmp_path, server) as clips,
    ):
        settler = Settler(first, clips, asyncio.Event(), on_late=first_late)
        settling = asyncio.create_task(settler.finish(row, verdict, "FINISH"), name="settle")
        await eventually(lambda: first.writes.ops["settle"] == 1, 60, 0.001)
        settling.cancel()  # within the commit window: the batch still commits
        with pytest.raises(asyncio.CancelledError):
            await settling
        assert rows(pg_url)[info.id][0] == "done"
        assert heard == []

        second_fleet = await holder(db, "second", lease=60.0)
        await take(second_fleet, "s5")  # "first" stopped renewing: it died
        second = store(db, "second", second_fleet.fence, grace=0.5)
        results = PgResults(db, lambda s: second_fleet.fence(s) or second.orphan_fence(s))

        async def record(late: Verdict, late_segment: SegmentInfo | None) -> None:
            assert late_segment == info
            await results.record("room-5", late_segment, late, "high")

        again = Settler(second, clips, asyncio.Event(), on_late=record)

        async def recorded() -> bool:
            await second.refresh()
            await again.redeliver()
            return bool(await results.owners("s5"))

        await eventually(recorded, 60, 0.1)
    assert await results.owners("s5") == [(info.id, "second", second_fleet.fences["s5"])]
    await second.writes.flush()  # the confirmation goes with the next write: now
    with psycopg.connect(pg_url) as conn:
        handed_on = conn.execute(
            "SELECT handed_on FROM ams_tasks WHERE segment_id = %s", (info.id,)
        ).fetchone()
    assert handed_on == (True,)
    await second.refresh()
    assert await second.unconfirmed() == []


async def test_a_live_owners_create_in_flight_is_not_taken_over_before_its_answer(
    db: PgDatabase,
) -> None:
    # "a" sheds the stream (alive) while its Create call is out: "b", the new holder, must
    # not look the task up yet (AMS may not list it: "b" would fail the segment).
    await PgDesiredStreams(db).put(stream("s6"), Origin.API)
    a_fleet = await holder(db, "a", lease=60.0)
    await take(a_fleet, "s6")
    a = store(db, "a", a_fleet.fence)
    info = segment("s6", 0).info()
    await a.add(info, "biz", f"/clips/{info.id}.wav", True, Excerpt.whole(15.0), 100.0)
    await a.mark_submitting([info.id], 100.0)
    await a_fleet.release(["s6"])

    b_fleet = await holder(db, "b", lease=60.0)
    await take(b_fleet, "s6")
    b = store(db, "b", b_fleet.fence)
    await b.refresh()
    assert await b.in_state(SegmentState.SUBMITTING) == []  # "a" is alive, the row young
    await a.mark_accepted([(info.id, "task-6", 101.0)], 100.5)
    await a.writes.flush()
    await b.refresh()
    (adopted,) = await b.in_state(SegmentState.PENDING)
    assert (adopted.segment_id, adopted.task_id) == (info.id, "task-6")
