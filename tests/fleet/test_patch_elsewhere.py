"""``PATCH /v1/streams/{id}`` through an instance that does not run the stream, on a real
PostgreSQL and real HTTP: instance B keeps the change in the shared desired set and answers
202 with what will happen; instance A, which runs the stream (a real ``Streams`` registry),
applies it in its lease loop within a turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
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
from streamguard.core.status import StreamState
from streamguard.moderation.profiles import Profiles
from streamguard.state.db import Database
from streamguard.state.desired import Origin
from streamguard.state.feedback import Feedback
from streamguard.state.postgres.changes import ConfigChanges
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.results import Results
from streamguard.streams.fleet import FleetDesired, FleetMember, FleetPlacements, RemoteChanges
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.registry import Streams
from streamguard.testing.engines import ToneEngine
from tests.fleet.test_streams_api import conforms
from tests.support.waiting import eventually

TOKEN = "operator-token-0123"
PROFILES = {"default": ProfileConfig(), "strict": ProfileConfig(cooldown_seconds=5)}
LEASE = 3.0  # a turn every second


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def _ignore_result(stream: StreamConfig, result: SegmentResult) -> None:
    pass


async def _ignore(*_: Any) -> None:
    pass


@asynccontextmanager
async def instance(db: PgDatabase, name: str, tmp: Path) -> AsyncIterator[tuple[Fleet, Streams]]:
    """One instance's fleet membership and its real stream registry."""
    fleet = Fleet(db, name, lease_seconds=LEASE)
    await fleet.join()
    async with Streams(
        ingest=IngestConfig(),
        engine=ToneEngine(),
        clip_dir=tmp / name / "clips",
        on_result=_ignore_result,
        on_state=_ignore,
        metrics=Metrics(),
        api_allows_files=False,
        profiles=Profiles(PROFILES),
        on_attach=_ignore,
        desired=FleetDesired(fleet, PgDesiredStreams(db)),
    ) as streams:
        yield fleet, streams


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_patch_on_b_changes_the_stream_running_on_a(db: PgDatabase, tmp_path: Path) -> None:
    desired = PgDesiredStreams(db)
    await desired.put(StreamConfig(id="filed", url="http://127.0.0.1:9/f.mp3"), Origin.CONFIG)
    async with AsyncExitStack() as stack:
        a_fleet, a_streams = await stack.enter_async_context(instance(db, "a", tmp_path))
        b_fleet, b_streams = await stack.enter_async_context(instance(db, "b", tmp_path))
        await a_streams.attach(StreamConfig(id="room1", url="http://127.0.0.1:9/r.mp3"))
        assert a_fleet.fences.keys() == {"room1"}
        member = FleetMember(
            a_fleet, a_streams, changes=RemoteChanges(ConfigChanges(db, "a"), a_streams)
        )
        loop = asyncio.create_task(member.run(), name="test.fleet.leases[a]")
        stack.push_async_callback(stopped, loop)

        local = await stack.enter_async_context(Database(tmp_path / "b.db"))
        app = build_api(
            streams=b_streams,
            results=Results(local),
            feedback=Feedback(local),
            registry=CollectorRegistry(),
            readiness={},
            token=TOKEN,
            placements=FleetPlacements(b_fleet, desired, ConfigChanges(db, "b")),
        )
        runner, port = await start_site(app, "127.0.0.1", 0)
        stack.push_async_callback(runner.cleanup)
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def patch(stream_id: str, body: dict[str, Any]) -> tuple[int, Any]:
            url = f"http://127.0.0.1:{port}/v1/streams/{stream_id}"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with http.patch(url, json=body, headers=auth) as response:
                return response.status, await response.json()

        # Room and profile: swapped in place on A.
        status, body = await patch("room1", {"room": "lobby", "profile": "strict"})
        assert status == 202, body
        conforms(body, "PendingStreamChange")
        assert (body["placement"], body["owner"]) == ("elsewhere", "a")
        assert (body["room"], body["profile"]) == ("lobby", "strict")  # as kept now
        assert body["change"]["state"] == "pending"
        assert body["change"]["applied_by"] == "a"
        assert body["change"]["within_seconds"] == pytest.approx(LEASE / 3)
        await eventually(lambda: (a_streams.config_of("room1") or _NONE).room == "lobby")
        changed = a_streams.config_of("room1")
        assert changed is not None
        assert changed.profile == "strict"

        # A new source: A restarts the stream on it, still under its lease.
        new_url = "http://127.0.0.1:9/moved.mp3"
        status, body = await patch("room1", {"url": new_url})
        assert (status, body["url"], body["room"]) == (202, new_url, "lobby")
        await eventually(lambda: (a_streams.config_of("room1") or _NONE).url == new_url)
        report = a_streams.report("room1")
        assert report is not None
        assert report.state is not StreamState.FAILED
        assert "room1" in a_fleet.fences

        # Refused on B as its owner would refuse them, nothing kept.
        status, body = await patch("room1", {"profile": "nope"})
        assert (status, body["error"]["code"]) == (422, "unknown_profile")
        status, body = await patch("filed", {"room": "x"})
        assert (status, body["error"]["code"]) == (409, "configured_in_file")
        status, _ = await patch("nowhere", {"room": "x"})
        assert status == 404
        (kept,) = await desired.leases("room1")
        assert (kept.config["url"], kept.config["profile"]) == (new_url, "strict")


_NONE = StreamConfig(id="none", url="http://127.0.0.1:9/none.mp3")
