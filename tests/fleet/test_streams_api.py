"""``/v1/streams`` in fleet mode, on a real PostgreSQL: every stream of the fleet with its
owner and lease; the live report of the streams running on the instance asked; a clear
``placement`` for those owned elsewhere or by nobody; only the local streams (flagged
incomplete) while the database is away. On one machine every stream is owned here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from streamguard.api.openapi import OPENAPI
from streamguard.api.routes import build_api
from streamguard.config.streams import StreamConfig
from streamguard.core.serving import start_site
from streamguard.core.status import StreamState
from streamguard.state.db import Database
from streamguard.state.desired import Origin
from streamguard.state.feedback import Feedback
from streamguard.state.postgres.changes import ConfigChanges
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.results import Results
from streamguard.streams.fleet import FleetDesired, FleetPlacements
from streamguard.streams.placement import LocalPlacements, Placements
from streamguard.streams.registry import ConfiguredInFile
from streamguard.streams.report import StreamReport, StreamTally
from streamguard.testing.postgres import PostgresServer

TOKEN = "operator-token-0123"


class Running:
    """The API's streams seam (``StreamControl``): the streams running on this instance."""

    def __init__(self, configs: Callable[[], list[StreamConfig]]) -> None:
        self._configs = configs

    def reports(self) -> list[StreamReport]:
        return [StreamReport(c, StreamState.ONLINE, None, StreamTally()) for c in self._configs()]

    def report(self, stream_id: str) -> StreamReport | None:
        return next((r for r in self.reports() if r.stream_id == stream_id), None)

    def config_of(self, stream_id: str) -> StreamConfig | None:
        report = self.report(stream_id)
        return report.config if report else None

    async def attach(self, stream: StreamConfig) -> None:
        raise AssertionError("not in these tests")

    async def change(self, stream: StreamConfig) -> None:
        raise AssertionError("not in these tests")

    async def detach(self, stream_id: str) -> bool:
        raise AssertionError("not in these tests")


def conforms(body: Any, schema_name: str) -> None:
    resource = Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:api", resource)
    schema = {"$ref": f"urn:api#/components/schemas/{schema_name}"}
    Draft202012Validator(schema, registry=registry).validate(body)


def config(stream_id: str) -> StreamConfig:
    return StreamConfig(id=stream_id, url=f"http://127.0.0.1:9/{stream_id}.mp3")


@asynccontextmanager
async def served(
    tmp_path: Path, streams: Running, placements: Placements
) -> AsyncIterator[Callable[..., Any]]:
    async with Database(tmp_path / "local.db") as local:
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
        try:
            async with aiohttp.ClientSession() as http:

                async def get(path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
                    url = f"http://127.0.0.1:{port}{path}"
                    auth = {"Authorization": f"Bearer {TOKEN}"}
                    async with http.request(method, url, json=body, headers=auth) as response:
                        return response.status, await response.json()

                yield get
        finally:
            await runner.cleanup()


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def test_the_list_shows_every_fleet_stream_with_its_owner_and_where_it_runs(
    db: PgDatabase, tmp_path: Path
) -> None:
    desired = PgDesiredStreams(db)
    for stream_id in ("s1", "s2", "s3", "s4"):
        await desired.put(config(stream_id), Origin.CONFIG)
    a, b = Fleet(db, "a", lease_seconds=30), Fleet(db, "b", lease_seconds=30)
    await a.join()
    await b.join()
    mine, theirs = await a.claim(), await b.claim()
    assert len(mine) == len(theirs) == 2
    expired = theirs[0].stream_id  # b's lease on it ran out: nobody holds it now
    await db.run(
        lambda conn: conn.execute(
            "UPDATE desired_streams SET lease_until = now() - interval '1 second'"
            " WHERE stream_id = %s",
            (expired,),
        )
    )
    await desired.put(config("s5"))  # attached, not claimed yet
    running = Running(lambda: [config(lease.stream_id) for lease in mine])

    async with served(
        tmp_path, running, FleetPlacements(a, desired, ConfigChanges(db, "a"))
    ) as get:
        status, body = await get("/v1/streams")
        assert status == 200
        assert (body["instance"], body["complete"]) == ("a", True)
        listed = {s["id"]: s for s in body["streams"]}
        assert sorted(listed) == ["s1", "s2", "s3", "s4", "s5"]
        for item in body["streams"]:
            conforms(item, "PlacedStream")
        for lease in mine:
            here = listed[lease.stream_id]
            assert (here["placement"], here["owner"], here["state"]) == ("here", "a", "online")
            assert here["generation"] == a.fences[lease.stream_id]
            assert here["lease_until"] is not None
        elsewhere = listed[theirs[1].stream_id]
        assert (elsewhere["placement"], elsewhere["owner"]) == ("elsewhere", "b")
        assert elsewhere["generation"] == theirs[1].generation
        assert elsewhere["state"] is None
        assert elsewhere["segments"] is None
        assert elsewhere["url"].endswith(f"/{theirs[1].stream_id}.mp3")  # its kept config
        assert (listed[expired]["placement"], listed[expired]["owner"]) == ("unowned", "b")
        unclaimed = listed["s5"]
        assert (unclaimed["placement"], unclaimed["owner"]) == ("unowned", None)
        assert unclaimed["generation"] is None
        assert unclaimed["lease_until"] is None

        status, one = await get(f"/v1/streams/{theirs[1].stream_id}")
        assert (status, one["placement"], one["owner"]) == (200, "elsewhere", "b")
        conforms(one, "PlacedStream")
        status, one = await get(f"/v1/streams/{mine[0].stream_id}")
        assert (status, one["placement"], one["state"]) == (200, "here", "online")
        status, _ = await get("/v1/streams/nowhere")
        assert status == 404

        # A change of a stream running elsewhere is kept for its owner (202; applied by
        # it: tests/fleet/test_patch_elsewhere.py); one of a config file stream is refused.
        status, refused = await get(
            f"/v1/streams/{theirs[1].stream_id}", "PATCH", {"profile": "default"}
        )
        assert (status, refused["error"]["code"]) == (409, "configured_in_file")
        status, pending = await get("/v1/streams/s5", "PATCH", {"room": "lobby"})
        assert (status, pending["placement"], pending["room"]) == (202, "unowned", "lobby")
        assert pending["change"]["applied_by"] is None
        status, _ = await get("/v1/streams/nowhere", "PATCH", {"profile": "default"})
        assert status == 404


async def test_while_the_database_is_away_the_list_holds_this_instances_streams_only(
    postgres: PostgresServer, db: PgDatabase, tmp_path: Path
) -> None:
    desired = PgDesiredStreams(db)
    for stream_id in ("s1", "s2"):
        await desired.put(config(stream_id), Origin.CONFIG)
    a = Fleet(db, "a", lease_seconds=30)
    await a.join()
    mine = await a.claim()
    assert len(mine) == 2
    running = Running(lambda: [config("s1")])
    async with served(
        tmp_path, running, FleetPlacements(a, desired, ConfigChanges(db, "a"))
    ) as get:
        await asyncio.to_thread(postgres.stop)
        try:
            status, body = await get("/v1/streams")
            assert (status, body["complete"]) == (200, False)
            (only,) = body["streams"]
            assert (only["id"], only["placement"], only["owner"]) == ("s1", "here", "a")
            assert only["generation"] == a.fences["s1"]
            status, one = await get("/v1/streams/s1")
            assert (status, one["state"]) == (200, "online")
        finally:
            await asyncio.to_thread(postgres.start)
        status, body = await get("/v1/streams")
        assert (status, body["complete"], len(body["streams"])) == (200, True, 2)


async def test_on_one_machine_every_stream_is_owned_here(tmp_path: Path) -> None:
    running = Running(lambda: [config("s1")])
    async with served(tmp_path, running, LocalPlacements("solo")) as get:
        status, body = await get("/v1/streams")
        assert (status, body["instance"], body["complete"]) == (200, "solo", True)
        (only,) = body["streams"]
        conforms(only, "PlacedStream")
        assert (only["placement"], only["owner"], only["generation"]) == ("here", "solo", None)
        status, one = await get("/v1/streams/s1")
        assert (status, one["owner"], one["state"]) == (200, "solo", "online")


async def test_a_config_file_stream_running_elsewhere_cannot_be_detached_here(
    db: PgDatabase,
) -> None:
    desired = PgDesiredStreams(db)
    await desired.put(config("filed"), Origin.CONFIG)
    await desired.put(config("attached"), Origin.API)
    here = FleetDesired(Fleet(db, "a", lease_seconds=30), desired)
    with pytest.raises(ConfiguredInFile, match="config file"):
        await here.remove("filed")
    assert await here.remove("attached")
    assert [kept.stream_id for kept in await desired.all(None)] == ["filed"]
