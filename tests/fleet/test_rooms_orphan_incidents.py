"""What an instance taking over a dead instance's room needs from its journal, on a real
PostgreSQL: the incidents the dead instance left open are ended by the instance that took
its stream over (the ``end`` alert a timely end would have sent, same ``alert_id``), so the
shared history shows them ended and consumers get their ``end``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.incidents import IncidentQuery
from streamguard.state.journal import IncidentJournal
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.incidents import PgIncidentHistory
from streamguard.state.postgres.journal import PgIncidentJournal
from streamguard.streams.fleet import FleetMember
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.fleet.test_shedding import Runner

PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}
LEASE = 30.0


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def alerting(
    stack: AsyncExitStack, db: PgDatabase, tmp: Path, name: str
) -> tuple[Alerting, RecordingSink]:
    """Instance ``name``'s alerting on the shared history and journal."""
    sqlite = await stack.enter_async_context(Database(tmp / f"{name}.db"))
    sink = RecordingSink()
    shared = PgIncidentJournal(db, name, alive_within=LEASE)
    made = Alerting(
        PROFILES,
        sink,
        instance_id=name,
        db=sqlite,
        history=PgIncidentHistory(db),
        journal=IncidentJournal(sqlite, shared=shared),
    )
    return await stack.enter_async_context(made), sink


async def test_the_new_owner_ends_what_the_dead_owner_left_open(
    db: PgDatabase, tmp_path: Path
) -> None:
    await PgDesiredStreams(db).put(StreamConfig(id="s1", url="http://127.0.0.1:9/s1.mp3"))
    a, b = Fleet(db, "a", lease_seconds=LEASE), Fleet(db, "b", lease_seconds=LEASE)
    await a.join()
    await b.join()
    assert [lease.stream_id for lease in await a.claim()] == ["s1"]
    history = PgIncidentHistory(db)
    async with AsyncExitStack() as a_stack, AsyncExitStack() as b_stack:
        on_a, a_sink = await alerting(a_stack, db, tmp_path, "a")
        seg = segment("s1", 0)
        outcomes = Outcomes(PROFILES, on_a)
        (opened,) = await outcomes.handle(stream("s1", "room-1"), seg, risky(seg), None)
        incident_id = opened.payload["incident"]["id"]
        (left,) = await history.query(IncidentQuery(open_only=True))
        assert left["id"] == incident_id

        # a dies: no heartbeat, its lease runs out; b takes the stream over in its turn.
        await db.run(
            lambda conn: conn.execute(
                "UPDATE fleet_instances SET heartbeat_at = now() - interval '1 hour'"
                " WHERE instance_id = 'a';"
                " UPDATE desired_streams SET lease_until = now() - interval '1 second'"
            )
        )
        on_b, b_sink = await alerting(b_stack, db, tmp_path, "b")
        member = FleetMember(b, Runner(), adopt_orphans=on_b.end_orphans)
        await member.turn()
        assert "s1" in b.fences
        (ended,) = b_sink.alerts
        assert ended.payload["incident"] == {**opened.payload["incident"], "event": "end"}
        assert ended.payload["instance"] == "b"
        assert await history.query(IncidentQuery(open_only=True)) == []
        assert await on_b.end_orphans() == 0  # adopted once
        await member.turn()  # no takeover this turn: nothing to adopt
        assert len(b_sink.alerts) == 1

        # Had a come back and ended it itself, consumers would deduplicate the two.
        await a_stack.aclose()
        (a_end,) = [x for x in a_sink.alerts if x.payload["incident"]["event"] == "end"]
        assert a_end.alert_id == ended.alert_id
