"""Units of work on a real PostgreSQL: what one judged segment writes (result, incident,
incident segment, alert in the outbox, open-incident journal) is one transaction with one
fence check; the units of an instance's streams that close within the batching window are
one transaction, a stale stream's unit refused alone; the lease turn is one statement.

Transactions are counted at our seam (``PgDatabase.queries``: one per ``run``/``once``).
The batching window is made long here and the batch written by ``flush`` once every unit
joined it, so what is asserted does not depend on timing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from streamguard.config.policy import ProfileConfig
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.desired import Origin
from streamguard.state.journal import IncidentJournal
from streamguard.state.outbox import MessageKind
from streamguard.state.postgres.database import Connection, PgDatabase, StaleWrite
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.incidents import PgIncidentHistory
from streamguard.state.postgres.journal import PgIncidentJournal
from streamguard.state.postgres.outbox import PgOutbox
from streamguard.state.postgres.results import PgResults
from streamguard.state.postgres.units import WriteBatches
from streamguard.state.spool import DIRECT, Spool
from streamguard.streams.fleet import FleetMember
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from streamguard.testing.postgres import PostgresServer
from tests.fleet.test_shedding import Runner

PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}
LEASE = 60.0
LONG = 3600.0
"""A batching window nobody waits out: the batch is written by ``flush``."""


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


class OutboxSink(RecordingSink):
    """Writes every alert into the shared outbox, fenced by its stream, as ``MqttAlerts``
    does (and keeps it, to assert on)."""

    def __init__(self, outbox: PgOutbox) -> None:
        super().__init__()
        self.outbox = outbox

    async def emit(self, alert: Alert) -> None:
        payload = json.dumps(alert.to_json())
        topic = f"alerts/{alert.room_id}"
        await self.outbox.add(MessageKind.ALERT, alert.alert_id, topic, payload, alert.stream_id)
        await super().emit(alert)


async def instance(
    stack: AsyncExitStack,
    db: PgDatabase,
    tmp: Path,
    fleet: Fleet,
    window: float,
    spool: Spool | None = None,
) -> tuple[Outcomes, WriteBatches, list[str], Alerting]:
    """One instance's path from a verdict to its writes, on units batched within
    ``window``; the list gets the streams refused as stale."""
    stale: list[str] = []

    def refused(stream_id: str) -> None:  # as ``FleetMember.stale`` does
        stale.append(stream_id)
        fleet.forget(stream_id)

    writes = spool or DIRECT
    batches = WriteBatches(db, window=window, writes=writes, on_stale=refused)
    sqlite = await stack.enter_async_context(Database(tmp / f"{fleet.instance_id}.db"))
    outbox = PgOutbox(db, fleet.instance_id, dead_after=LEASE, fences=fleet.fence)
    shared = PgIncidentJournal(db, fleet.instance_id, alive_within=LEASE)
    alerting = Alerting(
        PROFILES,
        OutboxSink(outbox),
        instance_id=fleet.instance_id,
        db=sqlite,
        history=PgIncidentHistory(db),
        journal=IncidentJournal(sqlite, shared=shared),
        units=batches.unit,
    )
    await stack.enter_async_context(alerting)
    # Closed before the alerting: the incidents it ends on closing are written at once.
    await stack.enter_async_context(batches)
    results = PgResults(db, fleet.fence, writes)
    outcomes = Outcomes(PROFILES, alerting, results, units=batches.unit)
    return outcomes, batches, stale, alerting


async def holding(db: PgDatabase, name: str, streams: list[str]) -> Fleet:
    desired = PgDesiredStreams(db)
    for stream_id in streams:
        await desired.put(stream(stream_id), Origin.API)
    fleet = Fleet(db, name, lease_seconds=LEASE)
    await fleet.join()
    await fleet.claim()
    return fleet


async def count(db: PgDatabase, table: str) -> int:
    async def read(conn: Connection) -> int:
        cursor = await conn.execute(f"SELECT count(*) FROM {table}")
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    return await db.run(read)


async def one_batch(
    batches: WriteBatches, calls: list[Coroutine[Any, Any, list[Alert]]]
) -> list[list[Alert] | BaseException]:
    """Run ``calls`` at once, and write their units as one batch once all joined it."""
    tasks = [asyncio.create_task(call) for call in calls]
    async with asyncio.timeout(30):
        while batches.waiting < len(calls):  # noqa: ASYNC110 - a count, no event to await
            await asyncio.sleep(0.01)
    await batches.flush()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_a_segment_writes_everything_in_one_transaction(
    db: PgDatabase, tmp_path: Path
) -> None:
    fleet = await holding(db, "a", ["s1"])
    async with AsyncExitStack() as stack:
        outcomes, _, _, _ = await instance(stack, db, tmp_path, fleet, window=0)
        for seq in range(3):  # the first opens the incident and alerts, the others update it
            seg = segment("s1", seq)
            before = db.queries
            await outcomes.handle(stream("s1"), seg, risky(seg), None)
            assert db.queries - before == 1  # result, incident, segment, journal, alert
    assert await count(db, "results") == 3
    assert await count(db, "incident_segments") == 3
    assert await count(db, "incidents") == 1
    assert await count(db, "open_incidents") == 0  # ended on close: its end alert is queued
    assert await count(db, "alerts_outbox") == 2  # new, end


async def test_the_units_of_many_streams_share_one_transaction(
    db: PgDatabase, tmp_path: Path
) -> None:
    streams = [f"s{n}" for n in range(4)]
    fleet = await holding(db, "a", streams)
    assert sorted(fleet.fences) == streams
    async with AsyncExitStack() as stack:
        outcomes, batches, stale, _ = await instance(stack, db, tmp_path, fleet, window=LONG)
        for seq in range(2):
            segs = {s: segment(s, seq) for s in streams}
            calls = [
                outcomes.handle(stream(s, f"room-{s}"), segs[s], risky(segs[s]), None)
                for s in streams
            ]
            before = db.queries
            handled = await one_batch(batches, calls)
            assert db.queries - before == 1
            assert all(isinstance(alerts, list) for alerts in handled)
        assert stale == []
        assert await count(db, "results") == 8
        assert await count(db, "incident_segments") == 8
        assert await count(db, "open_incidents") == 4
        assert await count(db, "alerts_outbox") == 4  # one new alert a room


async def test_a_stale_stream_in_a_batch_is_refused_alone(db: PgDatabase, tmp_path: Path) -> None:
    a = await holding(db, "a", ["s1", "s2"])
    assert sorted(a.fences) == ["s1", "s2"]
    # a's lease on s2 runs out (it was paused) and b takes s2 over; a does not know yet.
    await db.run(
        lambda conn: conn.execute(
            "UPDATE desired_streams SET lease_until = now() - interval '1 second'"
            " WHERE stream_id = 's2'"
        )
    )
    b = Fleet(db, "b", lease_seconds=LEASE)
    await b.join()
    assert [lease.stream_id for lease in await b.claim()] == ["s2"]
    async with AsyncExitStack() as stack:
        outcomes, batches, stale, alerting = await instance(stack, db, tmp_path, a, window=LONG)
        segs = {s: segment(s, 0) for s in ("s1", "s2")}
        calls = [
            outcomes.handle(stream(s, f"room-{s}"), segs[s], risky(segs[s]), None)
            for s in ("s1", "s2")
        ]
        kept, refused = await one_batch(batches, calls)
        assert isinstance(kept, list)
        assert len(kept) == 1
        assert isinstance(refused, StaleWrite)
        assert stale == ["s2"]
        results = PgResults(db, a.fence)
        assert [s for s, _, _ in await results.owners("s1")] == [segs["s1"].id]
        assert await results.owners("s2") == []  # nothing of s2's unit was written
        assert await count(db, "incident_segments") == 1
        assert await count(db, "alerts_outbox") == 1
        # The incident s2's refused unit opened is withdrawn: no end follows a lost new.
        assert [i.room_id for i in alerting.incidents.open] == ["room-s1"]


async def test_a_lease_turn_is_one_statement_in_steady_state(db: PgDatabase) -> None:
    streams = [f"s{n}" for n in range(5)]
    fleet = await holding(db, "a", streams)
    member = FleetMember(fleet, Runner())
    await member.turn()
    before = db.queries
    await member.turn()
    assert db.queries - before == 1  # heartbeat, renewals, share and gauges
    assert member.gauges["streams_held"] == 5
    assert member.gauges["instances_alive"] == 1
    assert member.gauges["streams_unowned"] == 0


async def test_a_unit_the_database_cannot_take_waits_in_the_spool_and_is_written_whole(
    postgres: PostgresServer, db: PgDatabase, tmp_path: Path
) -> None:
    fleet = await holding(db, "a", ["s1"])
    async with AsyncExitStack() as stack:
        spool = await stack.enter_async_context(Spool())
        outcomes, _, stale, _ = await instance(stack, db, tmp_path, fleet, window=0, spool=spool)
        postgres.kill()
        try:
            segs = [segment("s1", n) for n in range(2)]
            for seg in segs:
                await outcomes.handle(stream("s1"), seg, risky(seg), None)
            # Kept in memory, in order: the first segment's unit; behind it the second's
            # result (the spool held writes already) and then the rest of its unit.
            assert spool.depth == 3
            postgres.start()
            async with asyncio.timeout(60):
                await spool.wait_written()
        finally:
            postgres.start()
        assert stale == []
        assert [s for s, _, _ in await PgResults(db, fleet.fence).owners("s1")] == [
            seg.id for seg in segs
        ]
        assert await count(db, "incident_segments") == 2
        assert await count(db, "open_incidents") == 1
        assert await count(db, "alerts_outbox") == 1  # the incident's new alert
