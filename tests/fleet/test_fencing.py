"""Fenced writes on a real PostgreSQL: a stale owner's results and alerts are refused by
generation, the current owner's are kept; results are shared and queryable fleet-wide; a
database restarted mid-run refuses writes as "storage unavailable" (what the spool keeps and
retries) and takes them again once back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from streamguard.config.streams import StreamConfig
from streamguard.state.db import StorageUnavailable
from streamguard.state.desired import Origin
from streamguard.state.outbox import MessageKind
from streamguard.state.postgres.database import PgDatabase, StaleWrite
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fence, Fleet
from streamguard.state.postgres.outbox import PgOutbox
from streamguard.state.postgres.results import PgResults
from streamguard.state.results import ResultQuery
from streamguard.state.spool import Spool
from streamguard.state.usage import UsageRange
from streamguard.streams.fleet import FleetDesired, FleetMember
from streamguard.testing.alerts import risky, segment, stream
from streamguard.testing.postgres import PostgresServer


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def take_over(db: PgDatabase, stream_id: str) -> tuple[Fleet, Fleet]:
    """``old`` claimed ``stream_id``; its lease ran out and ``new`` took it over."""
    await PgDesiredStreams(db).put(stream(stream_id), Origin.API)
    old, new = Fleet(db, "old", lease_seconds=0.3), Fleet(db, "new", lease_seconds=0.3)
    await old.join()
    await old.claim()
    await new.join()
    async with asyncio.timeout(60):
        while not new.fences:
            await asyncio.sleep(0.05)
            await new.renew()
            await new.claim()
    return old, new


async def test_a_stale_owner_cannot_record_a_result_and_the_new_owner_can(
    db: PgDatabase,
) -> None:
    old, new = await take_over(db, "s1")
    assert old.fences == {"s1": 1}  # it does not know yet: it has not renewed
    assert new.fences == {"s1": 2}
    seg = segment("s1", 0)

    with pytest.raises(StaleWrite, match="generation 1"):
        await PgResults(db, old.fence).record("room-1", seg, risky(seg), "high")
    await PgResults(db, new.fence).record("room-1", seg, risky(seg), "high")

    results = PgResults(db, new.fence)
    assert await results.owners("s1") == [(seg.id, "new", 2)]
    [row] = await results.query(ResultQuery(stream_id="s1", min_risk="medium", text="IDIOT"))
    assert row["verdict"]["label"] == "Abuse"
    assert row["segment"]["segment_id"] == seg.id
    assert await results.query(ResultQuery(text="idiot missing")) == []
    assert set(await results.latest(["s1", "s2"])) == {"s1"}
    assert await results.stream_of(seg.id) == "s1"


async def test_a_takeover_knows_when_the_stream_was_last_heard(db: PgDatabase) -> None:
    await PgDesiredStreams(db).put(stream("s1"), Origin.API)
    old = Fleet(db, "old", lease_seconds=0.3)
    await old.join()
    (first,) = await old.claim()
    assert first.heard_until is None  # never recorded
    seg = segment("s1", 3)
    await PgResults(db, old.fence).record("room-1", seg, risky(seg), "high")
    new = Fleet(db, "new", lease_seconds=0.3)
    await new.join()
    async with asyncio.timeout(60):
        while not (leases := await new.claim()):
            await asyncio.sleep(0.05)
            await new.renew()
    assert leases[0].heard_until == seg.ended_at
    assert leases[0].previous_owner == "old"


async def test_a_detached_streams_last_writes_are_kept(db: PgDatabase) -> None:
    await PgDesiredStreams(db).put(stream("s1"), Origin.API)
    holder = Fleet(db, "holder", lease_seconds=30)
    await holder.join()
    await holder.claim()
    assert await PgDesiredStreams(db).remove("s1")
    seg = segment("s1", 0)
    await PgResults(db, holder.fence).record("room-1", seg, risky(seg), "high")  # its tail
    assert await PgResults(db, holder.fence).stream_of(seg.id) == "s1"


class StoppedStreams:
    """The registry's side of a stream detached through the API: it stopped already."""

    def __init__(self) -> None:
        self.handed_over: list[str] = []

    async def run_leased(
        self, stream: StreamConfig, *, from_api: bool, heard_until: datetime | None = None
    ) -> None:
        raise AssertionError(f"nothing to claim here, got {stream.id}")

    async def hand_over(self, stream_id: str) -> bool:
        self.handed_over.append(stream_id)
        return False


async def test_a_stream_detached_through_the_fleet_records_its_tail(db: PgDatabase) -> None:
    holder = Fleet(db, "holder", lease_seconds=30)
    await holder.join()
    desired = FleetDesired(holder, PgDesiredStreams(db))
    await desired.put(stream("s1"))
    results, refused = PgResults(db, holder.fence), list[str]()
    results.on_stale = refused.append
    # ``Streams.detach`` forgets the stream first, then stops it and waits for its tail;
    # a renewal may come in between.
    assert await desired.remove("s1")
    assert await holder.renew() == ["s1"]
    seg = segment("s1", 0)
    await results.record("room-1", seg, risky(seg), "high")  # the tail
    assert await results.stream_of(seg.id) == "s1"
    assert refused == []
    # The member's next turn finds it gone and stopped, and drops its fence.
    streams = StoppedStreams()
    await FleetMember(holder, streams).turn()
    assert streams.handed_over == ["s1"]
    assert holder.fences == {}


async def test_a_write_for_a_stream_this_instance_never_held_is_refused(db: PgDatabase) -> None:
    holder = Fleet(db, "holder", lease_seconds=30)
    await holder.join()
    seg = segment("s9", 0)
    with pytest.raises(StaleWrite, match="holds no lease"):
        await PgResults(db, holder.fence).record("room-1", seg, risky(seg), "high")


async def test_a_stale_owner_cannot_queue_an_alert_and_any_live_instance_sends_a_dead_ones(
    db: PgDatabase,
) -> None:
    _, new = await take_over(db, "s1")
    old_outbox = PgOutbox(db, "old", dead_after=0.3, fences=lambda s: Fence(s, "old", 1))
    with pytest.raises(StaleWrite):
        await old_outbox.add(MessageKind.ALERT, "a-stale", "t/alerts/room-1", "{}", "s1")
    new_outbox = PgOutbox(db, "new", dead_after=0.3, fences=new.fence)
    assert await new_outbox.add(MessageKind.ALERT, "a-1", "t/alerts/room-1", "{}", "s1")
    # An event the dead instance left before it died (not a stream's: no fence).
    assert await old_outbox.add(MessageKind.EVENT, "e-old", "t/events/s1", "{}")
    await new_outbox.open()
    assert new_outbox.depth == 2
    await new.renew()  # alive; ``old`` renews no more, so its messages are anyone's
    taken = await new_outbox.peek(10)
    assert [m.message_id for m in taken] == ["a-1", "e-old"]
    # Claimed: another publisher does not get them while the claim lasts.
    other = PgOutbox(db, "other", dead_after=0.3)
    assert await other.peek(10) == []
    await new_outbox.remove([m.seq for m in taken])
    assert new_outbox.depth == 0
    await new_outbox.wait_empty()


async def test_a_live_writer_keeps_its_own_messages(db: PgDatabase) -> None:
    writer = Fleet(db, "writer", lease_seconds=30)
    await writer.join()
    outbox = PgOutbox(db, "writer", dead_after=30)
    await outbox.add(MessageKind.EVENT, "e-1", "t/events/s1", "{}")
    assert await PgOutbox(db, "peer", dead_after=30).peek(10) == []
    [message] = await outbox.peek(10)
    await outbox.dead_letter(message, "poison")
    assert outbox.dead_lettered_total == 1
    assert outbox.depth == 0


async def test_a_restarted_database_refuses_then_takes_spooled_writes(
    postgres: PostgresServer, db: PgDatabase
) -> None:
    await PgDesiredStreams(db).put(stream("s1"), Origin.API)
    owner = Fleet(db, "owner", lease_seconds=60)
    await owner.join()
    await owner.claim()
    postgres.kill()
    try:
        with pytest.raises(StorageUnavailable):
            await owner.renew()
        async with Spool() as spool:
            results = PgResults(db, owner.fence, spool)
            segments = [segment("s1", n) for n in range(3)]
            for seg in segments:
                await results.record("room-1", seg, risky(seg), "high")  # kept in memory
            assert spool.depth == 3
            assert spool.degraded
            postgres.start()
            async with asyncio.timeout(60):
                await spool.wait_written()
    finally:
        postgres.start()
    assert await owner.renew() == []  # the lease outlived the restart
    assert [s for s, _, _ in await results.owners("s1")] == [s.id for s in segments]


async def test_shared_results_page_newest_first_and_count_usage_by_day(db: PgDatabase) -> None:
    await PgDesiredStreams(db).put(stream("s1"), Origin.API)
    holder = Fleet(db, "holder", lease_seconds=30)
    await holder.join()
    await holder.claim()
    results = PgResults(db, holder.fence)
    segments = [segment("s1", seq) for seq in range(5)]
    for seg in segments:
        await results.record("room-1", seg, risky(seg), "high")

    first = await results.query(ResultQuery(stream_id="s1", newest_first=True, limit=2))
    rest = await results.query(
        ResultQuery(stream_id="s1", newest_first=True, limit=10, after=first[-1]["cursor"])
    )
    order = [row["segment"]["segment_id"] for row in first + rest]
    assert order == [seg.id for seg in reversed(segments)]
    assert await results.query(ResultQuery(after="not a cursor")) == []

    [day] = await results.usage()
    assert (day["label"], day["segments"]) == ("Abuse", 5)
    assert day["minutes_ingested"] == pytest.approx(5 * segments[0].duration / 60, abs=0.001)
    later = UsageRange(since=segments[-1].started_at + timedelta(days=1))
    assert await results.usage(later) == []
