"""``/v1/rooms`` in fleet mode, on a real PostgreSQL and real HTTP: any instance lists every
room of the fleet, each with its placement (live runtime fields only where it runs here),
its last result and its open incidents from the shared stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from streamguard.api.console import ConsoleSetup
from streamguard.api.routes import build_api
from streamguard.config.policy import ProfileConfig
from streamguard.core.serving import start_site
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.desired import Origin
from streamguard.state.postgres.changes import ConfigChanges
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.feedback import PgFeedback
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.incidents import PgIncidentHistory
from streamguard.state.postgres.results import PgResults
from streamguard.streams.fleet import FleetPlacements
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.fleet.test_streams_api import Running, config, conforms

TOKEN = "operator-token-0123"
PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def test_any_instance_lists_every_room_of_the_fleet(db: PgDatabase, tmp_path: Path) -> None:
    desired = PgDesiredStreams(db)
    for stream_id in ("s1", "s2"):
        await desired.put(config(stream_id), Origin.CONFIG)
    a, b = Fleet(db, "a", lease_seconds=30), Fleet(db, "b", lease_seconds=30)
    await a.join()
    await b.join()
    (mine,) = await a.claim()
    (theirs,) = await b.claim()
    await desired.put(config("s3"))  # attached, nobody holds it yet
    async with AsyncExitStack() as stack:
        # b judges its stream: a result (fenced by b's lease) and an incident still open.
        sqlite = await stack.enter_async_context(Database(tmp_path / "b.db"))
        alerting = await stack.enter_async_context(
            Alerting(
                PROFILES,
                RecordingSink(),
                instance_id="b",
                db=sqlite,
                history=PgIncidentHistory(db),
            )
        )
        outcomes = Outcomes(PROFILES, alerting, PgResults(db, b.fence))
        seg = segment(theirs.stream_id, 0)
        room = stream(theirs.stream_id, f"room-{theirs.stream_id}")
        await outcomes.handle(room, seg, risky(seg, text="idiot"), None)

        app = build_api(
            streams=Running(lambda: [config(mine.stream_id)]),
            results=PgResults(db, a.fence),
            feedback=PgFeedback(db),
            registry=CollectorRegistry(),
            readiness={},
            token=TOKEN,
            console=ConsoleSetup(PgIncidentHistory(db), tmp_path / "evidence"),
            placements=FleetPlacements(a, desired, ConfigChanges(db, "a")),
        )
        runner, port = await start_site(app, "127.0.0.1", 0)
        stack.push_async_callback(runner.cleanup)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"http://127.0.0.1:{port}/v1/rooms", headers=auth) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()

    assert (body["instance"], body["complete"]) == ("a", True)
    rooms = {r["id"]: r for r in body["rooms"]}
    assert sorted(rooms) == ["s1", "s2", "s3"]
    for item in body["rooms"]:
        conforms(item, "Room")
    here, there, nobody = rooms[mine.stream_id], rooms[theirs.stream_id], rooms["s3"]
    assert (here["placement"], here["owner"], here["state"]) == ("here", "a", "online")
    assert (there["placement"], there["owner"], there["state"]) == ("elsewhere", "b", None)
    assert there["open_incidents"] == 1
    assert there["last_result"]["verdict"]["text"] == "idiot"
    assert (here["open_incidents"], here["last_result"]) == (0, None)
    assert (nobody["placement"], nobody["owner"]) == ("unowned", None)
