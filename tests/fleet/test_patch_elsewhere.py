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
from streamguard.state.db import Database, StorageUnavailable
from streamguard.state.desired import Origin
from streamguard.state.feedback import Feedback
from streamguard.state.postgres.changes import ConfigChanges, Kept
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.results import Results
from streamguard.streams.fleet import FleetDesired, FleetMember, FleetPlacements, RemoteChanges
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.placement import PlacedStream
from streamguard.streams.registry import Streams
from streamguard.streams.report import StreamReport
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


class _Refusing:
    """``on_attach`` (our seam) whose first calls fail as listed: the state disk refusing,
    then a bug; later calls pass."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)

    async def __call__(self, stream: StreamConfig) -> None:
        if self.failures:
            raise self.failures.pop(0)


async def test_a_change_that_failed_to_apply_is_retried_at_the_next_turn(
    db: PgDatabase, tmp_path: Path
) -> None:
    """The owner records a row's version only once applied: a transient refusal
    (``StorageUnavailable``) or an unexpected error leaves the change for the next turn."""
    fleet = Fleet(db, "a", lease_seconds=LEASE)
    await fleet.join()
    on_attach = _Refusing()
    async with Streams(
        ingest=IngestConfig(),
        engine=ToneEngine(),
        clip_dir=tmp_path / "clips",
        on_result=_ignore_result,
        on_state=_ignore,
        metrics=Metrics(),
        api_allows_files=False,
        profiles=Profiles(PROFILES),
        on_attach=on_attach,
        desired=FleetDesired(fleet, PgDesiredStreams(db)),
    ) as streams:
        await streams.attach(StreamConfig(id="room1", url="http://127.0.0.1:9/r.mp3"))
        changes = RemoteChanges(ConfigChanges(db, "a"), streams)
        await changes.apply()  # seen: as it runs
        running = streams.config_of("room1")
        assert running is not None
        changed = running.model_copy(update={"room": "lobby"}).model_dump(mode="json")
        assert await ConfigChanges(db, "b").change("room1", changed, None) is Kept.CHANGED

        on_attach.failures = [StorageUnavailable("disk full"), RuntimeError("a bug")]
        await changes.apply()  # refused by the state disk: kept for the next turn
        assert (streams.config_of("room1") or _NONE).room == "room1"
        with pytest.raises(RuntimeError):
            await changes.apply()
        assert (streams.config_of("room1") or _NONE).room == "room1"
        await changes.apply()
        assert (streams.config_of("room1") or _NONE).room == "lobby"
        assert on_attach.failures == []


class _ReadTogether(FleetPlacements):
    """``FleetPlacements`` (our seam) whose ``one`` returns only once both instances'
    PATCHes have read the stream: each merges its body over the same kept config."""

    def __init__(self, barrier: asyncio.Barrier, *args: Any) -> None:
        super().__init__(*args)
        self.barrier: asyncio.Barrier | None = barrier

    async def one(self, stream_id: str, report: StreamReport | None) -> PlacedStream | None:
        placed = await super().one(stream_id, report)
        if self.barrier is not None:
            async with asyncio.timeout(30):
                await self.barrier.wait()
        return placed


async def test_concurrent_patches_through_two_instances_lose_no_field(
    db: PgDatabase, tmp_path: Path
) -> None:
    """B and C both read the stream A runs, then each PATCHes a different field: one is
    kept, the other is refused (409 ``conflict``) instead of silently overwriting it; its
    retry keeps both fields."""
    desired = PgDesiredStreams(db)
    barrier = asyncio.Barrier(2)
    async with AsyncExitStack() as stack:
        _, a_streams = await stack.enter_async_context(instance(db, "a", tmp_path))
        await a_streams.attach(StreamConfig(id="room1", url="http://127.0.0.1:9/r.mp3"))
        ports, seams = [], []
        for name in ("b", "c"):
            fleet, streams = await stack.enter_async_context(instance(db, name, tmp_path))
            local = await stack.enter_async_context(Database(tmp_path / f"{name}.db"))
            placements = _ReadTogether(barrier, fleet, desired, ConfigChanges(db, name))
            seams.append(placements)
            app = build_api(
                streams=streams,
                results=Results(local),
                feedback=Feedback(local),
                registry=CollectorRegistry(),
                readiness={},
                token=TOKEN,
                placements=placements,
            )
            runner, port = await start_site(app, "127.0.0.1", 0)
            stack.push_async_callback(runner.cleanup)
            ports.append(port)
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def patch(port: int, body: dict[str, Any]) -> tuple[int, Any]:
            url = f"http://127.0.0.1:{port}/v1/streams/room1"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with http.patch(url, json=body, headers=auth) as response:
                return response.status, await response.json()

        bodies = [{"room": "lobby"}, {"profile": "strict"}]
        answers = await asyncio.gather(*(patch(p, b) for p, b in zip(ports, bodies, strict=True)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [202, 409], answers
        ((refused, answer),) = [(i, a) for i, (s, a) in enumerate(answers) if s == 409]
        assert answer["error"]["code"] == "conflict"

        for seam in seams:
            seam.barrier = None  # the retry reads alone
        status, answer = await patch(ports[refused], bodies[refused])
        assert status == 202, answer
        (kept,) = await desired.leases("room1")
        assert (kept.config["room"], kept.config["profile"]) == ("lobby", "strict")
