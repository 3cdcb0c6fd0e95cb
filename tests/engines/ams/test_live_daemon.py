"""The daemon in AMS live mode (issue 12): AMS (the emulator) pulls the room's stream URL
itself; the daemon records AMS's slices as the room's segments, alerts on the abusive one
through the outbox and the broker, reports the stream online, and cancels the AMS task
when it stops."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.testing.broker import Mosquitto
from streamguard.testing.engines import ToneEngine
from streamguard.testing.net import free_port
from tests.emulator.test_emulator import static_server
from tests.support.ams import KEYS, SECRET_ID, SECRET_KEY
from tests.support.audio import encode, noise, tone
from tests.support.daemon import DaemonProcess
from tests.support.subscriber import Subscriber

ENV = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}


def results(daemon: DaemonProcess) -> list[sqlite3.Row]:
    path = daemon.workdir / "state" / "streamguard.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute("SELECT * FROM results ORDER BY seq").fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []


@pytest.mark.slow
async def test_the_daemon_moderates_a_room_that_ams_pulls_itself(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(np.concatenate([noise(15.0), tone(15.0), noise(15.0)]), media / "room.wav")
    options = EmulatorOptions(keys=KEYS, slice_seconds=15, processing_factor=0.0)
    async with static_server(media) as base, AmsEmulator(ToneEngine(), options) as emulator:
        config = f"""
[engine]
type = "ams"
mode = "live"
endpoint = "{emulator.url}"
delivery_listen = "127.0.0.1:{free_port()}"
live_poll_interval = 0.5
live_restart_max = 30
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
topic_prefix = "livemode"
[[streams]]
id = "ams-live"
room = "live-room"
url = "{base}/room.wav"
"""
        daemon = DaemonProcess(tmp_path / "daemon", config, env=ENV)
        try:
            async with Subscriber(mosquitto.port, ["livemode/v1/alerts/#"], "test-live") as bus:
                await asyncio.to_thread(daemon.start)
                received = await bus.wait_until(lambda got: len(got) >= 1, 120)

                def three() -> bool:
                    return len(results(daemon)) >= 3

                async with asyncio.timeout(60):
                    while not await asyncio.to_thread(three):  # noqa: ASYNC110 - another process
                        await asyncio.sleep(0.3)
                _, status = await asyncio.to_thread(daemon.request, "GET", "/v1/streams/ams-live")
                daemon.signal(signal.SIGTERM)
                assert await asyncio.to_thread(daemon.wait) == 0
        finally:
            daemon.close()
        tasks = list(emulator.tasks.values())
    rows = results(daemon)[:3]
    assert [r["suggestion"] for r in rows] == ["Pass", "Block", "Pass"]
    assert all(r["engine"] == "ams" and r["outcome"] == "moderated" for r in rows)
    assert rows[1]["label"] == "Abuse"
    alert = received[0].json
    assert received[0].topic == "livemode/v1/alerts/live-room"
    assert alert["segment"]["id"] == rows[1]["segment_id"]
    assert alert["risk"]["label"] == "Abuse"
    assert status["state"] in ("online", "reconnecting")
    assert all(t.type == "LIVE_AUDIO" for t in tasks)
    assert {t.status for t in tasks} <= {"FINISH", "CANCELLED"}  # none left pulling
