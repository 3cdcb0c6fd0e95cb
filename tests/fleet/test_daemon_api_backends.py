"""The whole daemon as a process on either backend — its own SQLite, or fleet mode's
PostgreSQL (``[state] url``, one instance) — answering the same API the same way: streams
attached, changed, kept across a restart and detached; a room heard end to end (the sample
room from a local file, judged by the local engine) found by the result search with its
incident, in the incident history with its evidence playable, counted in the usage and the
rooms, and given feedback. What differs by design (who else owns a stream: elsewhere,
unowned) is in ``test_streams_api.py``."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamguard.testing.postgres import PostgresServer
from tests.support.backends import BACKENDS, BackendName
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

INSTANCE = "test"  # DaemonProcess's
CONFIG = """allow_local_files = true
[ingest]
segment_seconds = 15
open_timeout = 2
read_timeout = 2
stall_timeout = 3
[ingest.backoff]
initial = 0.2
maximum = 1.0
[profiles.default]
cooldown_seconds = 3600
incident_quiet_seconds = 3600
"""
"""The first line continues ``DaemonProcess``'s ``[api]`` table (it writes the port there)."""


FILED = '[[streams]]\nid = "filed"\nurl = "http://127.0.0.1:9/f.mp3"\nroom = "r-file"\n'
"""A stream of the config file (``filed_daemon``)."""


def started(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer, extra: str = ""
) -> Iterator[DaemonProcess]:
    """The daemon on the backend of ``request.param``, started (``extra``: more config)."""
    name: BackendName = request.param
    config = CONFIG + extra
    if name == "postgres":
        postgres.start()  # a test that stopped it and failed before starting it again
        config += f'[state]\nurl = "{postgres.create_database()}"\nlease_seconds = 3\n'
    process = DaemonProcess(tmp_path / "daemon", config, instance=INSTANCE)
    try:
        process.start()
        yield process
    finally:
        process.close()


@pytest.fixture(params=BACKENDS)
def daemon(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer
) -> Iterator[DaemonProcess]:
    """The daemon on one backend (ids ``[sqlite]``, ``[postgres]``)."""
    yield from started(request, tmp_path, postgres)


@pytest.fixture(params=BACKENDS)
def filed_daemon(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer
) -> Iterator[DaemonProcess]:
    """The daemon on one backend with a stream in its config file."""
    yield from started(request, tmp_path, postgres, FILED)


async def call(daemon: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    return await asyncio.to_thread(daemon.request, method, path, body)


async def until(value: Callable[[], Awaitable[Any]], within: float) -> Any:
    """``value()`` once it is truthy (polled), within ``within`` seconds."""
    got: list[Any] = []

    async def ready() -> bool:
        got[:] = [await value()]
        return bool(got[0])

    await eventually(ready, within, 0.1)
    return got[0]


def ranged(url: str, byte_range: str) -> tuple[int, bytes, int]:
    """Status, body and whole length of a Range request (no token: a signed URL)."""
    request = urllib.request.Request(url, headers={"Range": byte_range})
    with urllib.request.urlopen(request, timeout=30) as response:
        whole = int(response.headers["Content-Range"].rsplit("/", 1)[1])
        return response.status, response.read(), whole


async def restart(daemon: DaemonProcess) -> None:
    daemon.signal(signal.SIGTERM)
    assert await asyncio.to_thread(daemon.wait) == 0
    await asyncio.to_thread(daemon.start)


async def test_attach_change_keep_across_a_restart_and_detach(daemon: DaemonProcess) -> None:
    stream = {"id": "lobby", "url": "http://127.0.0.1:9/live.mp3", "room": "r1"}
    status, body = await call(daemon, "POST", "/v1/streams", stream)
    assert status == 201, body
    assert (body["room"], body["owner"], body["placement"]) == ("r1", INSTANCE, "here")
    assert (await call(daemon, "POST", "/v1/streams", stream))[0] == 409
    status, body = await call(daemon, "PATCH", "/v1/streams/lobby", {"metadata": {"a": "b"}})
    assert (status, body["metadata"], body["placement"]) == (200, {"a": "b"}, "here")
    assert (await call(daemon, "PATCH", "/v1/streams/lobby", {"id": "other"}))[0] == 400
    assert (await call(daemon, "PATCH", "/v1/streams/nope", {"room": "x"}))[0] == 404
    _, listed = await call(daemon, "GET", "/v1/streams")
    assert [(s["id"], s["owner"]) for s in listed["streams"]] == [("lobby", INSTANCE)]
    assert (listed["instance"], listed["complete"]) == (INSTANCE, True)

    # A restart brings it back as changed (SQLite: restored; fleet: claimed again).
    await restart(daemon)

    async def back() -> Any:
        status, body = await call(daemon, "GET", "/v1/streams/lobby")
        return status == 200 and body["placement"] == "here" and body

    kept = await until(back, 30)
    assert (kept["room"], kept["metadata"], kept["owner"]) == ("r1", {"a": "b"}, INSTANCE)

    assert (await call(daemon, "DELETE", "/v1/streams/lobby"))[0] == 204
    assert (await call(daemon, "GET", "/v1/streams/lobby"))[0] == 404
    assert (await call(daemon, "DELETE", "/v1/streams/lobby"))[0] == 404
    await restart(daemon)  # detached for good: not brought back
    assert (await call(daemon, "GET", "/v1/streams/lobby"))[0] == 404
    assert (await call(daemon, "GET", "/v1/streams"))[1]["streams"] == []


async def test_a_room_heard_is_searched_counted_and_reviewed_alike(
    daemon: DaemonProcess, room_mp3: Path
) -> None:
    stream = {"id": "s1", "url": str(room_mp3), "room": "room-1"}
    status, body = await call(daemon, "POST", "/v1/streams", stream)
    assert status == 201, body

    async def heard() -> Any:
        _, found = await call(daemon, "GET", "/v1/results?stream=s1")
        return len(found["results"]) >= 3 and found["results"]  # 34 s in 15 s segments

    results = await until(heard, 120)
    ids = [r["segment"]["segment_id"] for r in results]
    _, found = await call(daemon, "GET", "/v1/results?q=idiot")
    (hit,) = found["results"]
    assert hit["segment"]["segment_id"] in ids
    assert hit["incident_id"] is not None
    assert (await call(daemon, "GET", "/v1/results?q=abuse&room=room-2"))[1]["results"] == []

    _, incidents = await call(daemon, "GET", "/v1/incidents?room=room-1")
    (incident,) = incidents["incidents"]
    assert (incident["id"], incident["label"]) == (hit["incident_id"], "Abuse")
    _, detail = await call(daemon, "GET", f"/v1/incidents/{incident['id']}")
    first = detail["segments"][0]
    assert first["segment"]["id"] == hit["segment"]["segment_id"]
    assert [a["incident"]["event"] for a in detail["alerts"]][:1] == ["new"]
    status, clip = await asyncio.to_thread(
        daemon.request, "GET", first["evidence"]["url"], token=None
    )
    assert status == 200
    assert clip.startswith("ID3")  # the clip as the daemon keeps it: mp3
    url = f"http://127.0.0.1:{daemon.port}{first['evidence']['url']}"
    _, body, whole = await asyncio.to_thread(ranged, url, "bytes=0-")
    assert (body[:3], len(body)) == (b"ID3", whole)
    assert await asyncio.to_thread(ranged, url, "bytes=1-2") == (206, body[1:3], whole)
    status, problem = await call(daemon, "GET", f"/v1/evidence/{ids[-1]}")
    assert (status, problem["error"]["code"]) == (404, "no_evidence")  # a clean segment

    _, usage = await call(daemon, "GET", "/v1/usage")
    (day,) = usage["days"]
    assert day["segments"] == len(results)
    assert {row["label"] for row in usage["labels"]} >= {"Abuse"}
    _, rooms = await call(daemon, "GET", "/v1/rooms")
    (room,) = rooms["rooms"]
    assert (room["id"], room["open_incidents"]) == ("s1", 1)
    assert room["last_result"]["segment"]["segment_id"] == ids[-1]

    entry = {"kind": "confirmed", "incident_id": incident["id"], "label": "Abuse"}
    status, stored = await call(daemon, "POST", "/v1/feedback", entry)
    assert (status, stored["target_id"]) == (201, incident["id"])
    _, feedback = await call(daemon, "GET", "/v1/feedback")
    assert feedback["counts"]["confirmed"] == {"Abuse": 1}
    _, detail = await call(daemon, "GET", f"/v1/incidents/{incident['id']}")
    assert [e["kind"] for e in detail["feedback"]] == ["confirmed"]


async def test_a_stream_of_the_config_file_is_listed_and_refused_alike(
    filed_daemon: DaemonProcess,
) -> None:
    daemon = filed_daemon

    async def running() -> Any:
        status, body = await call(daemon, "GET", "/v1/streams/filed")
        return status == 200 and body["placement"] == "here" and body  # fleet: once claimed

    listed = await until(running, 30)
    assert (listed["room"], listed["owner"]) == ("r-file", INSTANCE)
    other = {"id": "filed", "url": "http://127.0.0.1:9/other.mp3"}
    for method, path, body in (
        ("PATCH", "/v1/streams/filed", {"room": "x"}),
        ("DELETE", "/v1/streams/filed", None),
        ("POST", "/v1/streams", other),
    ):
        status, answer = await call(daemon, method, path, body)
        assert (method, status, answer["error"]["code"]) == (method, 409, "configured_in_file")
    _, unchanged = await call(daemon, "GET", "/v1/streams/filed")
    assert (unchanged["room"], unchanged["url"]) == ("r-file", "http://127.0.0.1:9/f.mp3")


async def test_a_held_stream_is_reported_then_fixed_by_patch_or_removed_by_delete(
    daemon: DaemonProcess,
) -> None:
    """A kept stream that cannot run after a restart (its profile gone) is reported failed,
    with why; a PATCH that makes it runnable starts it, a DELETE forgets it."""
    kids = CONFIG + "[profiles.kids]\n"
    daemon.write_config(kids + daemon.config_path.read_text().split(CONFIG, 1)[1])
    await restart(daemon)
    for stream_id in ("fix-me", "drop-me"):
        body = {"id": stream_id, "url": "http://127.0.0.1:9/live", "profile": "kids"}
        assert (await call(daemon, "POST", "/v1/streams", body))[0] == 201
    daemon.write_config(CONFIG + daemon.config_path.read_text().split(kids, 1)[1])
    await restart(daemon)

    async def held() -> Any:
        _, listed = await call(daemon, "GET", "/v1/streams")
        reports = {s["id"]: s for s in listed["streams"]}
        return all(r["placement"] == "here" for r in reports.values()) and reports

    reports = await until(held, 30)
    assert sorted(reports) == ["drop-me", "fix-me"]
    for report in reports.values():
        assert report["state"] == "failed", report
        assert "'kids' is not defined" in report["last_error"]
    status, body = await call(daemon, "PATCH", "/v1/streams/fix-me", {"profile": "default"})
    assert status == 200, body
    assert (body["state"], body["profile"]) != ("failed", "kids")
    assert body["state"] != "failed"
    assert (await call(daemon, "DELETE", "/v1/streams/drop-me"))[0] == 204
    await restart(daemon)
    kept = await until(held, 30)
    assert [(s["id"], s["profile"], s["state"] != "failed") for s in kept.values()] == [
        ("fix-me", "default", True)
    ]


async def test_a_held_stream_runs_again_once_a_reload_defines_its_profile(
    daemon: DaemonProcess,
) -> None:
    """A kept stream held because its profile is gone runs after a SIGHUP that defines the
    profile again (fleet mode kept its lease and never tried it again)."""
    kids = CONFIG + "[profiles.kids]\n"
    rest = daemon.config_path.read_text().split(CONFIG, 1)[1]
    daemon.write_config(kids + rest)
    await restart(daemon)
    body = {"id": "come-back", "url": "http://127.0.0.1:9/live", "profile": "kids"}
    assert (await call(daemon, "POST", "/v1/streams", body))[0] == 201
    daemon.write_config(CONFIG + rest)
    await restart(daemon)

    async def report() -> Any:
        status, found = await call(daemon, "GET", "/v1/streams/come-back")
        return found if status == 200 and found.get("placement") == "here" else None

    held = await until(report, 30)
    assert held["state"] == "failed", held
    assert "'kids' is not defined" in held["last_error"]
    daemon.write_config(kids + rest)
    daemon.signal(signal.SIGHUP)

    async def running() -> Any:
        found = await report()
        return found if found and found["state"] != "failed" else None

    again = await until(running, 30)
    assert again["profile"] == "kids"
