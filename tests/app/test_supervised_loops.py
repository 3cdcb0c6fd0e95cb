"""A background loop that raises does not take the daemon down: the supervisor restarts it,
``/metrics`` and a health event on the bus say so, and SIGTERM afterwards still judges the
partial tail and exits 0.

The daemon runs in this process (so a fault can be planted in a loop) against real peers: a
mosquitto broker, the AMS emulator over HTTP, a live Icecast-like source on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamguard.app.daemon import Daemon
from streamguard.bus.publisher import Publisher
from streamguard.config import load_config
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.engines.ams.poller import Poller
from streamguard.moderation.incidents import IncidentTracker
from streamguard.testing.broker import Mosquitto
from streamguard.testing.engines import ToneEngine
from streamguard.testing.media_servers import IcecastServer
from streamguard.testing.net import free_port
from tests.support.ams import KEYS, SECRET_ID, SECRET_KEY
from tests.support.subscriber import Subscriber

PREFIX = "supervised"


def fail_once(cls: type[Any], name: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make ``cls.name`` raise the first time it is called; return the calls seen."""
    original: Callable[..., Any] = getattr(cls, name)
    calls: list[str] = []

    def planted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError(f"planted fault in {name}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, planted)
    return calls


async def _until(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not done():  # noqa: ASYNC110 - the poller offers no event to wait on
            await asyncio.sleep(0.1)


def metric_lines(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body: bytes = response.read()
    return body.decode().splitlines()


async def test_crashed_loops_restart_and_sigterm_still_judges_the_tail(
    tmp_path: Path,
    mosquitto: Mosquitto,
    room_media: tuple[bytes, float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    timer_calls = fail_once(IncidentTracker, "next_deadline", monkeypatch)
    publisher_calls = fail_once(Publisher, "_publish_instance", monkeypatch)
    poller_calls = fail_once(Poller, "_poll_due", monkeypatch)
    media, seconds = room_media
    options = EmulatorOptions(keys=KEYS, slice_seconds=15, processing_factor=0.0)
    async with (
        IcecastServer(media, seconds) as source,
        AmsEmulator(ToneEngine(), options) as emulator,
        Subscriber(mosquitto.port, [f"{PREFIX}/v1/instances/test/events"], "loops") as events,
    ):
        config_path = tmp_path / "streamguard.toml"
        api_port = free_port()
        config_path.write_text(
            f"""
[instance]
id = "test"
state_dir = "{tmp_path / "state"}"
[api]
port = {api_port}
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
topic_prefix = "{PREFIX}"
[engine]
type = "ams"
endpoint = "{emulator.url}"
delivery_listen = "127.0.0.1:{free_port()}"
batch_window = 0.2
poll_interval = 0.5
[ingest]
segment_seconds = 60
[[streams]]
id = "live-room"
url = "{source.url}"
""",
            encoding="utf-8",
        )
        daemon = Daemon(config_path, load_config(config_path))
        run = asyncio.create_task(daemon.run(), name="test.daemon")
        # Every planted fault fires and every loop comes back: the timer runs again, the
        # poller polls again, the publisher reconnects and publishes the crashes' events.
        got = await events.wait_until(lambda r: len(r) >= 3, seconds=60)
        loops = sorted(message.json["loop"] for message in got)
        assert loops == ["alerts.incident-timer", "ams.poller", "outbox.publisher"]
        assert all(m.json["kind"] == "loop_restarted" for m in got)
        assert "planted fault" in got[0].json["detail"]
        # Each comes back after its restart backoff, which may end after the events arrive.
        await _until(lambda: len(timer_calls) >= 2)  # the timer runs again
        await _until(lambda: len(publisher_calls) >= 2)
        await _until(lambda: len(poller_calls) >= 2)  # the poller polls again
        lines = await asyncio.to_thread(metric_lines, api_port)
        for loop in loops:
            assert f'streamguard_loop_restarts_total{{loop="{loop}"}} 1.0' in lines
        # Audio has been heard but no segment is complete (60 s): SIGTERM must judge the tail.
        await asyncio.sleep(4)
        assert not run.done()
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await run == 0

    with sqlite3.connect(tmp_path / "state" / "streamguard.db") as conn:
        rows = conn.execute("SELECT outcome, engine, segment FROM results").fetchall()
    assert len(rows) == 1
    outcome, engine, segment = rows[0]
    assert (outcome, engine) == ("moderated", "ams")  # heard, gated as speech, judged by AMS
    assert json.loads(segment)["flags"] == ["partial"]
