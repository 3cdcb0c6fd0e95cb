"""A short database outage does not cost an instance its leases: with a lease far longer
than the outage (60 s), the lease loop's turn fails while PostgreSQL is down (the loop logs
it and waits for the next turn), and the first turn after it is back renews every lease in
place — same owner, same generation, ``lease_until`` pushed on, nothing released, claimed
or taken over, the stream still running here — and another instance finds nothing to
claim. No timing decides anything: the test waits on conditions (the turn failing, then
succeeding), never on a clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamguard.config.ingest import IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.metrics import Metrics
from streamguard.moderation.profiles import Profiles
from streamguard.state.db import StateError
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.streams.fleet import FleetDesired, FleetMember
from streamguard.streams.registry import Streams
from streamguard.testing.engines import ToneEngine
from streamguard.testing.postgres import PostgresServer
from tests.support.fleet import holder, query
from tests.support.waiting import eventually

LEASE = 60.0  # far longer than the outage: the lease must not lapse meanwhile


async def _ignore(*_: Any) -> None:
    pass


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


def lease_of(pg_url: str, stream_id: str) -> tuple[Any, ...]:
    (row,) = query(
        pg_url,
        "SELECT owner, generation, lease_until FROM desired_streams WHERE stream_id = %s",
        (stream_id,),
    )
    return row


async def test_a_lease_is_renewed_in_place_after_a_short_database_outage(
    db: PgDatabase, pg_url: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    fleet = Fleet(db, "a", lease_seconds=LEASE)
    await fleet.join()
    async with Streams(
        ingest=IngestConfig(),
        engine=ToneEngine(),
        clip_dir=tmp_path / "clips",
        on_result=_ignore,
        on_state=_ignore,
        metrics=Metrics(),
        api_allows_files=False,
        profiles=Profiles({"default": ProfileConfig()}),
        on_attach=_ignore,
        desired=FleetDesired(fleet, PgDesiredStreams(db)),
    ) as streams:
        await streams.attach(StreamConfig(id="room1", url="http://127.0.0.1:9/r.mp3"))
        member = FleetMember(fleet, streams)
        await member.turn()
        owner, generation, until = lease_of(pg_url, "room1")
        assert (owner, fleet.fences) == ("a", {"room1": generation})
        (mark,) = query(pg_url, "SELECT coalesce(max(id), 0) FROM lease_history")[0]

        await asyncio.to_thread(postgres.stop)
        try:
            with pytest.raises(StateError):
                await member.turn()  # what the loop logs before waiting for its next turn
            assert fleet.fences == {"room1": generation}  # nothing given up meanwhile
        finally:
            await asyncio.to_thread(postgres.start)

        async def turned() -> bool:
            try:
                await member.turn()
            except StateError:  # the pool reconnecting
                return False
            return True

        await eventually(turned, 60, 0.1)
        assert fleet.fences == {"room1": generation}
        owner_after, generation_after, until_after = lease_of(pg_url, "room1")
        assert (owner_after, generation_after) == ("a", generation)
        assert until_after > until  # renewed, not merely left to run
        history = query(pg_url, "SELECT kind, stream_id FROM lease_history WHERE id > %s", (mark,))
        assert history == []  # no release, claim or takeover
        assert streams.config_of("room1") is not None  # still runs here
        assert member.takeovers == 0
        other = await holder(db, "b", lease=LEASE)
        assert await other.claim() == []  # held: nothing for another instance
