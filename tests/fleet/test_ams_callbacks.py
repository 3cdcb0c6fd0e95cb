"""A callback arriving at any instance settles the task from the shared table: AMS calls back
through a load balancer (here: instance A's public URL is instance B's listener, with one
URL key and one clip directory, as behind a balancer with shared storage); A dies with its
task in flight, B holds the stream now, and the callback AMS sends when the task finishes
settles it on B once, as a late verdict. Real PostgreSQL, the AMS emulator over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from streamguard.core.segment import SegmentInfo
from streamguard.core.verdict import Suggestion, Verdict
from streamguard.emulator.faults import Faults
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.engine import AmsEngine
from streamguard.state.db import Database
from streamguard.state.desired import Origin
from streamguard.state.postgres.ams_tasks import PgTaskStore
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.testing.alerts import stream
from tests.support.ams import AmsStack, ams_stack, engine_config
from tests.support.audio import make_segment, tone
from tests.support.waiting import eventually

KEY = "one-key-for-the-fleet"


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


def engine(
    stack: AmsStack, sqlite: Database, clips: ClipServer, tasks: PgTaskStore, late: list[Verdict]
) -> AmsEngine:
    async def on_late(verdict: Verdict, segment: SegmentInfo | None) -> None:
        late.append(verdict)

    # Polls come long after the callback: only the callback can settle the task here.
    config = engine_config(stack.emulator.url, callback_grace=600.0, url_signing_key=SecretStr(KEY))
    return AmsEngine(
        config, sqlite, client=stack.client, clips=clips, store=tasks, on_verdict=on_late
    )


def state_of(pg_url: str, segment_id: str) -> tuple[str, str | None] | None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT state, settled_by FROM ams_tasks WHERE segment_id = %s", (segment_id,)
        ).fetchone()
    return None if row is None else (row[0], row[1])


async def test_a_callback_at_another_instance_settles_a_dead_instances_task_once(
    tmp_path: Path, db: PgDatabase, pg_url: str
) -> None:
    segment = make_segment("s1", 0, tone(15.0))
    await PgDesiredStreams(db).put(stream("s1"), Origin.API)
    a, b = Fleet(db, "a", lease_seconds=0.3), Fleet(db, "b", lease_seconds=0.3)
    await a.join()
    await a.claim()
    late_a: list[Verdict] = []
    late_b: list[Verdict] = []
    async with AsyncExitStack() as stack:
        ams = await stack.enter_async_context(ams_stack(tmp_path / "unused", Faults(stuck_first=1)))
        clips, key = tmp_path / "shared-clips", KEY.encode()
        balanced = await stack.enter_async_context(ClipServer(clips, key))  # B's listener
        at_a = await stack.enter_async_context(
            ClipServer(clips, key, public_base_url=balanced.base_url)
        )
        sqlite_a = await stack.enter_async_context(Database(tmp_path / "a.db"))
        tasks_a = PgTaskStore(db, "a", a.fence, grace=60.0, scan_every=3600.0)
        async with engine(ams, sqlite_a, at_a, tasks_a, late_a) as engine_a:
            waiting = asyncio.create_task(engine_a.moderate(segment), name="test.moderate")
            await eventually(lambda: state_of(pg_url, segment.id) == ("pending", None), 60)
            waiting.cancel()  # A dies with the task in flight
            await asyncio.wait([waiting])

        await b.join()

        async def b_holds() -> bool:
            await b.claim()
            return "s1" in b.fences

        await eventually(b_holds, 60, 0.05)
        sqlite_b = await stack.enter_async_context(Database(tmp_path / "b.db"))
        tasks_b = PgTaskStore(db, "b", b.fence, grace=60.0, scan_every=3600.0)
        engine_b = await stack.enter_async_context(engine(ams, sqlite_b, balanced, tasks_b, late_b))
        assert ams.emulator.release_stuck() == 1  # AMS finishes it and calls back

        await eventually(lambda: bool(late_b), 60)
        settled_by_callback = engine_b.callbacks_settled
        await asyncio.sleep(0.5)  # a second settle, were there one, would show by now
    assert [v.segment_id for v in late_b] == [segment.id]
    assert late_b[0].suggestion is Suggestion.BLOCK
    assert late_a == []
    assert settled_by_callback == 1
    assert state_of(pg_url, segment.id) == ("done", "b")
    assert ams.emulator.stats.tasks_by_data_id[segment.id] == 1  # never sent again
