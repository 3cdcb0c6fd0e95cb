"""Streams attached through the API outlive restarts: the daemon as a subprocess, restarted
on the same state directory, with live rooms on loopback."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

from streamguard.testing.media_servers import IcecastServer
from tests.app.test_daemon import FAST_INGEST, stream_config, wait_for
from tests.support.daemon import DaemonProcess

LOOPS = 12
"""The sample room played this many times over: a broadcast that outlasts the restarts."""

PACE = 3
"""Times faster than real time: a live broadcast, just a quicker one."""

KIDS = "[profiles.default]\n[profiles.kids]\n"


def broadcast(room_media: tuple[bytes, float]) -> IcecastServer:
    media, seconds = room_media
    return IcecastServer(media * LOOPS, seconds * LOOPS / PACE)


def judged(daemon: DaemonProcess, stream_id: str) -> int:
    """How many results the daemon recorded for ``stream_id``."""
    path = daemon.workdir / "state" / "streamguard.db"
    with sqlite3.connect(path) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM results WHERE stream_id = ?", (stream_id,))
            return int(row.fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


async def restart(daemon: DaemonProcess) -> None:
    """SIGTERM (exit 0 asserted), then start again on the same state directory."""
    daemon.signal(signal.SIGTERM)
    assert await asyncio.to_thread(daemon.wait) == 0
    await asyncio.to_thread(daemon.start)


async def call(daemon: DaemonProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One API call, off the event loop."""
    return await asyncio.to_thread(daemon.request, method, path, body)


async def test_an_api_stream_survives_restarts_until_it_is_detached(
    tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    daemon = DaemonProcess(tmp_path, FAST_INGEST)
    try:
        async with broadcast(room_media) as server:
            await asyncio.to_thread(daemon.start)
            stream = {"id": "kept", "url": server.url, "room": "kept-room", "segment_seconds": 15}
            assert (await call(daemon, "POST", "/v1/streams", stream))[0] == 201
            status, _ = await call(daemon, "PATCH", "/v1/streams/kept", {"metadata": {"a": "2"}})
            assert status == 200
            await wait_for(lambda: judged(daemon, "kept") >= 1, 90, "a segment judged")

            await restart(daemon)
            before = judged(daemon, "kept")  # the tail was judged on the way down
            status, body = await call(daemon, "GET", "/v1/streams/kept")
            assert status == 200, body
            assert (body["url"], body["room"], body["segment_seconds"], body["metadata"]) == (
                server.url,
                "kept-room",
                15,
                {"a": "2"},  # as changed, not as first attached
            )
            assert "STATUS=1 stream(s); API on 127.0.0.1:" in "\n".join(daemon.messages)
            await wait_for(lambda: judged(daemon, "kept") > before, 90, "judged after restart")

            assert (await call(daemon, "DELETE", "/v1/streams/kept"))[0] == 204
            await restart(daemon)
            assert (await call(daemon, "GET", "/v1/streams/kept"))[0] == 404
            assert (await call(daemon, "GET", "/v1/streams"))[1]["streams"] == []
            connections = server.connections
            await asyncio.sleep(3)
            assert server.connections == connections  # nobody listens to the room any more
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()


async def test_a_kept_stream_that_cannot_run_is_reported_and_the_daemon_starts(
    tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    daemon = DaemonProcess(tmp_path, FAST_INGEST + KIDS)
    try:
        async with broadcast(room_media) as server:
            await asyncio.to_thread(daemon.start)
            for stream_id, profile in (("kids-room", "kids"), ("plain", "default")):
                body = {"id": stream_id, "url": server.url, "profile": profile}
                assert (await call(daemon, "POST", "/v1/streams", body))[0] == 201
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0

            daemon.write_config(FAST_INGEST)  # the kids profile is gone
            await asyncio.to_thread(daemon.start)  # starts all the same
            reports = {s["id"]: s for s in (await call(daemon, "GET", "/v1/streams"))[1]["streams"]}
            assert reports["kids-room"]["state"] == "failed"
            assert "'kids' is not defined" in reports["kids-room"]["last_error"]
            assert reports["plain"]["state"] != "failed"
            assert "STATUS=2 stream(s), 1 failed; API on" in "\n".join(daemon.messages)
            log = daemon.log()
            assert "stream kids-room attached through the API cannot run" in log
            assert '"stream_id": "kids-room", "room_id": "kids-room", "state": "offline"' in log
            await wait_for(lambda: judged(daemon, "plain") >= 1, 90, "the other stream judged")

            # Still kept: the profile back and a reload, and it runs again.
            daemon.write_config(FAST_INGEST + KIDS)
            daemon.signal(signal.SIGHUP)
            await wait_for(
                lambda: daemon.request("GET", "/v1/streams/kids-room")[1]["state"] != "failed",
                30,
                "the held stream to run after the reload",
            )
            await wait_for(lambda: judged(daemon, "kids-room") >= 1, 90, "the held stream judged")
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()


async def test_a_held_stream_is_fixed_by_patch_or_removed_by_delete(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, FAST_INGEST + KIDS)
    try:
        await asyncio.to_thread(daemon.start)
        for stream_id in ("fix-me", "drop-me"):
            body = {"id": stream_id, "url": "http://127.0.0.1:9/live", "profile": "kids"}
            assert (await call(daemon, "POST", "/v1/streams", body))[0] == 201
        daemon.write_config(FAST_INGEST)
        await restart(daemon)
        assert (await call(daemon, "GET", "/v1/streams/fix-me"))[1]["state"] == "failed"
        status, body = await call(daemon, "PATCH", "/v1/streams/fix-me", {"profile": "default"})
        assert status == 200, body
        assert body["state"] != "failed"
        assert (await call(daemon, "DELETE", "/v1/streams/drop-me"))[0] == 204
        await restart(daemon)
        reports = (await call(daemon, "GET", "/v1/streams"))[1]["streams"]
        assert [(s["id"], s["profile"]) for s in reports] == [("fix-me", "default")]
        daemon.signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()


async def test_the_config_file_wins_and_a_reload_leaves_api_streams_alone(
    tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    daemon = DaemonProcess(tmp_path, FAST_INGEST)
    try:
        async with broadcast(room_media) as api_room, broadcast(room_media) as file_room:
            await asyncio.to_thread(daemon.start)
            for stream_id in ("shared", "api-only"):
                body = {"id": stream_id, "url": api_room.url}
                assert (await call(daemon, "POST", "/v1/streams", body))[0] == 201
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0

            daemon.write_config(FAST_INGEST + stream_config("shared", file_room.url))
            await asyncio.to_thread(daemon.start)
            assert (await call(daemon, "GET", "/v1/streams/shared"))[1]["url"] == file_room.url
            assert "its copy attached through the API is forgotten" in daemon.log()
            for method, change in (("PATCH", {"room": "x"}), ("DELETE", None)):
                status, reply = await call(daemon, method, "/v1/streams/shared", change)
                assert (status, reply["error"]["code"]) == (409, "configured_in_file"), reply

            daemon.write_config(FAST_INGEST)  # the file drops "shared"; "api-only" is not its
            daemon.signal(signal.SIGHUP)

            def ids() -> set[str]:
                return {s["id"] for s in daemon.request("GET", "/v1/streams")[1]["streams"]}

            await wait_for(lambda: ids() == {"api-only"}, 30, "the reload")
            await restart(daemon)
            assert await asyncio.to_thread(ids) == {"api-only"}  # the API's copy stays forgotten
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()
