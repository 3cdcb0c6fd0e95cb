"""``POST /v1/streams`` of an id the fleet already has, through an instance that does not
run it, answers as one machine does and changes nothing: ``409 stream_exists`` for a stream
live on another instance, ``409 configured_in_file`` for a stream of the config file —
the kept config, its origin and its lease untouched. (An id nobody holds any more may be
attached again, as a failed or ended stream may be on one machine.)"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from streamguard.config.streams import StreamConfig
from streamguard.state.desired import Origin
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from tests.fleet.test_patch_owner_backends import TOKEN, db, serve

__all__ = ["db"]  # the fixture, shared


async def post(base: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/v1/streams", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response,
    ):
        return response.status, await response.json()


async def test_attaching_an_id_the_fleet_has_elsewhere_changes_nothing(
    db: PgDatabase, tmp_path: Path
) -> None:
    desired = PgDesiredStreams(db)
    filed = StreamConfig(id="filed", url="http://127.0.0.1:9/f.mp3", room="r-file")
    await desired.put(filed, Origin.CONFIG)
    async with AsyncExitStack() as stack:
        a_fleet, a_streams, _ = await serve(stack, db, "a", tmp_path)
        (lease,) = await a_fleet.claim()
        await a_streams.run_leased(filed, from_api=lease.origin == Origin.API)
        await a_streams.attach(StreamConfig(id="room1", url="http://127.0.0.1:9/r.mp3", room="r1"))
        _, b_streams, b = await serve(stack, db, "b", tmp_path)
        before = {kept.stream_id: kept for kept in await desired.leases()}

        other = "http://127.0.0.1:9/other.mp3"
        status, body = await post(b, {"id": "room1", "url": other, "room": "hijack"})
        assert (status, body["error"]["code"]) == (409, "stream_exists")
        status, body = await post(b, {"id": "filed", "url": other, "room": "hijack"})
        assert (status, body["error"]["code"]) == (409, "configured_in_file")

        after = {kept.stream_id: kept for kept in await desired.leases()}
        assert after == before  # config, origin, owner, generation, updated_at
        assert b_streams.running() == []
