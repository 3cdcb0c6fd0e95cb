"""``PATCH /v1/streams/{id}`` through the instance that owns the stream (fleet mode), on a
real PostgreSQL and real HTTP, holds to what PATCH elsewhere holds to: the change is merged
over the config the desired set keeps (a change kept through another instance and not yet
applied here is not lost), kept only while that config is still the one read, and refused
for a stream of the config file; then applied here at once (200, the live report)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from streamguard.api.routes import build_api
from streamguard.config.ingest import IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.metrics import Metrics
from streamguard.core.serving import start_site
from streamguard.moderation.profiles import Profiles
from streamguard.state.db import Database
from streamguard.state.desired import Origin
from streamguard.state.feedback import Feedback
from streamguard.state.postgres.changes import ConfigChanges
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.results import Results
from streamguard.streams.fleet import FleetDesired, FleetPlacements
from streamguard.streams.registry import Streams
from streamguard.testing.engines import ToneEngine

TOKEN = "operator-token-0123"
PROFILES = {"default": ProfileConfig(), "strict": ProfileConfig(cooldown_seconds=5)}
Patch = Callable[[str, str, dict[str, Any]], Coroutine[Any, Any, tuple[int, Any]]]


async def _ignore(*_: Any) -> None:
    pass


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def serve(
    stack: AsyncExitStack, db: PgDatabase, name: str, tmp_path: Path
) -> tuple[Fleet, Streams, str]:
    """Instance ``name``: its fleet membership (no lease loop: nothing applied behind the
    test's back), its real stream registry, and its API's base URL."""
    fleet = Fleet(db, name, lease_seconds=30)
    await fleet.join()
    desired = PgDesiredStreams(db)
    streams = await stack.enter_async_context(
        Streams(
            ingest=IngestConfig(),
            engine=ToneEngine(),
            clip_dir=tmp_path / name / "clips",
            on_result=_ignore,
            on_state=_ignore,
            metrics=Metrics(),
            api_allows_files=False,
            profiles=Profiles(PROFILES),
            on_attach=_ignore,
            desired=FleetDesired(fleet, desired),
        )
    )
    local = await stack.enter_async_context(Database(tmp_path / f"{name}.db"))
    app = build_api(
        streams=streams,
        results=Results(local),
        feedback=Feedback(local),
        registry=CollectorRegistry(),
        readiness={},
        token=TOKEN,
        placements=FleetPlacements(fleet, desired, ConfigChanges(db, name)),
    )
    runner, port = await start_site(app, "127.0.0.1", 0)
    stack.push_async_callback(runner.cleanup)
    return fleet, streams, f"http://127.0.0.1:{port}"


@pytest.fixture
async def patch() -> AsyncIterator[Patch]:
    async with aiohttp.ClientSession() as http:

        async def call(base: str, stream_id: str, body: dict[str, Any]) -> tuple[int, Any]:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            url = f"{base}/v1/streams/{stream_id}"
            async with http.patch(url, json=body, headers=auth) as response:
                return response.status, await response.json()

        yield call


async def test_the_owner_merges_over_the_kept_config_and_loses_no_pending_change(
    db: PgDatabase, tmp_path: Path, patch: Patch
) -> None:
    async with AsyncExitStack() as stack:
        _, a_streams, a = await serve(stack, db, "a", tmp_path)
        _, _, b = await serve(stack, db, "b", tmp_path)
        await a_streams.attach(StreamConfig(id="room1", url="http://127.0.0.1:9/r.mp3"))

        status, body = await patch(b, "room1", {"room": "lobby"})  # kept for a, pending
        assert (status, body["change"]["applied_by"]) == (202, "a")
        status, body = await patch(a, "room1", {"profile": "strict"})  # on the owner
        assert status == 200, body
        assert (body["placement"], body["room"], body["profile"]) == ("here", "lobby", "strict")
        running = a_streams.config_of("room1")
        assert running is not None
        assert (running.room, running.profile) == ("lobby", "strict")
        (kept,) = await PgDesiredStreams(db).leases("room1")
        assert (kept.config["room"], kept.config["profile"]) == ("lobby", "strict")
        assert (kept.owner, kept.origin) == ("a", Origin.API)


async def test_the_owner_refuses_a_change_of_a_stream_of_the_config_file(
    db: PgDatabase, tmp_path: Path, patch: Patch
) -> None:
    filed = StreamConfig(id="filed", url="http://127.0.0.1:9/f.mp3", room="r1")
    await PgDesiredStreams(db).put(filed, Origin.CONFIG)
    async with AsyncExitStack() as stack:
        a_fleet, a_streams, a = await serve(stack, db, "a", tmp_path)
        (lease,) = await a_fleet.claim()
        await a_streams.run_leased(filed, from_api=lease.origin == Origin.API)

        status, body = await patch(a, "filed", {"room": "x"})
        assert (status, body["error"]["code"]) == (409, "configured_in_file")
        (kept,) = await PgDesiredStreams(db).leases("filed")
        assert (kept.origin, kept.config["room"]) == (Origin.CONFIG, "r1")
        running = a_streams.config_of("filed")
        assert running is not None
        assert running.room == "r1"
