"""Paced shedding on a real PostgreSQL: when the fleet grows, an instance over its share hands
streams back a few per turn of its lease loop, not all at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from streamguard.config.streams import StreamConfig
from streamguard.state.desired import Origin
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.streams.fleet import FleetMember


class Runner:
    """The member's seam to the streams (``LeasedStreams``): which streams run here."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.stopped: list[str] = []

    async def run_leased(
        self, stream: StreamConfig, *, from_api: bool, heard_until: datetime | None = None
    ) -> None:
        self.running.add(stream.id)

    async def hand_over(self, stream_id: str) -> bool:
        if stream_id not in self.running:
            return False
        self.running.discard(stream_id)
        self.stopped.append(stream_id)
        return True


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def test_a_grown_fleet_takes_the_excess_a_few_streams_a_turn(db: PgDatabase) -> None:
    desired = PgDesiredStreams(db)
    for n in range(10):
        url = f"https://live.example.invalid/{n}.m3u8"
        await desired.put(StreamConfig(id=f"s{n}", url=url), Origin.CONFIG)
    first = Runner()
    member = FleetMember(Fleet(db, "a", lease_seconds=30), first, shed_per_turn=2)
    await member.fleet.join()
    await member.turn()
    assert len(first.running) == 10

    second = Runner()
    newcomer = FleetMember(Fleet(db, "b", lease_seconds=30), second, shed_per_turn=2)
    await newcomer.fleet.join()
    handed: list[int] = []
    for _ in range(5):
        before = len(first.stopped)
        await member.turn()
        handed.append(len(first.stopped) - before)
        await newcomer.turn()
    assert handed == [2, 2, 1, 0, 0]  # 5 over its share, at most 2 a turn
    assert (len(first.running), len(second.running)) == (5, 5)
    assert first.running.isdisjoint(second.running)
    assert set(member.fleet.fences) == first.running
