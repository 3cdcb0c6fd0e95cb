"""The daemon on the AMS engine, end to end over real HTTP: a room's segments are gated,
submitted to the AMS emulator, fetched back from the daemon's signed URLs, judged there by
the local engine, and their verdicts recorded; silent segments are never submitted."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import numpy as np

from streamguard.core.chunk import SAMPLE_RATE
from streamguard.demo.samples import room
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.emulator.faults import Faults
from streamguard.engines.local import LocalEngine
from streamguard.ingest.encoder import encode_pcm
from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from tests.support.ams import KEYS, SECRET_ID, SECRET_KEY
from tests.support.daemon import DaemonProcess
from tests.support.subscriber import Subscriber

ENV = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}


def rows(daemon: DaemonProcess) -> list[sqlite3.Row]:
    with sqlite3.connect(daemon.workdir / "state" / "streamguard.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM results ORDER BY seq").fetchall()


async def test_daemon_moderates_a_room_through_the_ams_emulator(tmp_path: Path) -> None:
    # The sample room (speech, one abusive turn), then 20 s of silence: 4 segments of 15 s,
    # the last of them silent.
    pcm = np.concatenate([room(), np.zeros(20 * SAMPLE_RATE, dtype=np.int16)])
    media = tmp_path / "room.wav"
    await asyncio.to_thread(encode_pcm, pcm, media, "wav")
    async with (
        LocalEngine() as judge,
        AmsEmulator(
            judge, EmulatorOptions(keys=KEYS, slice_seconds=15, processing_factor=0.0)
        ) as emulator,
    ):
        config = f"""
[engine]
type = "ams"
endpoint = "{emulator.url}"
delivery_listen = "127.0.0.1:{free_port()}"
batch_window = 0.2
poll_interval = 0.5
[ingest]
segment_seconds = 15
[[streams]]
id = "ams-room"
url = "{media}"
"""
        daemon = DaemonProcess(tmp_path / "daemon", config, env=ENV)
        try:
            await asyncio.to_thread(daemon.start)

            def all_judged() -> bool:
                return daemon.workdir.joinpath("state").exists() and len(rows(daemon)) == 4

            async with asyncio.timeout(120):
                while not await asyncio.to_thread(all_judged):  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.5)
            _, metrics = await asyncio.to_thread(daemon.request, "GET", "/metrics", token=None)
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
        finally:
            daemon.close()
        submitted = sorted(task.data_id for task in emulator.tasks.values())

    results = rows(daemon)
    assert [r["outcome"] for r in results] == ["moderated", "moderated", "moderated", "no_speech"]
    assert [r["suggestion"] for r in results[:3]] == ["Pass", "Block", "Pass"]
    assert results[1]["label"] == "Abuse"
    assert all(r["engine"] == "ams" for r in results)
    # Silence is judged by the gate alone: never submitted, never billed.
    assert submitted == sorted(r["segment_id"] for r in results[:3])
    assert 'streamguard_ams_calls_total{action="CreateAudioModerationTask",code="OK"}' in metrics


def tracked(daemon: DaemonProcess) -> list[sqlite3.Row]:
    path = daemon.workdir / "state" / "streamguard.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute("SELECT * FROM ams_segments ORDER BY created_at").fetchall()
        except sqlite3.OperationalError:  # the table is not there yet
            return []


async def test_a_verdict_that_settles_after_a_crash_still_alerts_in_its_room(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # AMS holds every task (stuck); the daemon is killed with the abusive segment pending,
    # and restarted with the room's stream gone from its config. When AMS lets the task run,
    # the verdict nobody awaits any more is recorded and alerted on the bus, in the room the
    # stream was attached to, with its metadata, dated at the segment's end.
    media = tmp_path / "abusive.wav"
    abusive_turn = room()[15 * SAMPLE_RATE : 30 * SAMPLE_RATE]  # "Shut up, you idiot. ..."
    await asyncio.to_thread(encode_pcm, abusive_turn, media, "wav")
    async with (
        LocalEngine() as judge,
        AmsEmulator(
            judge, EmulatorOptions(keys=KEYS, slice_seconds=15, processing_factor=0.0)
        ) as emulator,
    ):
        emulator.faults = Faults(stuck_first=100)
        delivery = f"127.0.0.1:{free_port()}"  # the public clip URL outlives a restart
        config = f"""
[engine]
type = "ams"
endpoint = "{emulator.url}"
delivery_listen = "{delivery}"
batch_window = 0.2
poll_interval = 0.5
[ingest]
segment_seconds = 15
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
topic_prefix = "late"
"""
        stream = f"""
[[streams]]
id = "ams-room"
room = "late-room"
url = "{media}"
metadata = {{ show = "night-talk" }}
"""
        daemon = DaemonProcess(tmp_path / "daemon", config + stream, env=ENV)
        try:
            async with Subscriber(mosquitto.port, ["late/v1/alerts/#"], "test-late") as bus:
                await asyncio.to_thread(daemon.start)

                def with_ams() -> bool:
                    return [r["state"] for r in tracked(daemon)] == ["pending"]

                async with asyncio.timeout(120):
                    while not await asyncio.to_thread(with_ams):  # noqa: ASYNC110
                        await asyncio.sleep(0.5)
                daemon.kill()  # SIGKILL: nobody awaits this verdict any more
                (row,) = await asyncio.to_thread(tracked, daemon)
                abusive = row["segment_id"]
                assert rows(daemon) == []  # no verdict was recorded before the crash
                daemon.write_config(config)  # the stream is no longer configured
                await asyncio.to_thread(daemon.start)  # the same state directory
                assert emulator.release_stuck() == 1  # AMS recovers

                received = await bus.wait_until(
                    lambda got: any(m.json["segment"]["id"] == abusive for m in got), 120
                )
                daemon.signal(signal.SIGTERM)
                assert await asyncio.to_thread(daemon.wait) == 0
        finally:
            daemon.close()
    message = next(m for m in received if m.json["segment"]["id"] == abusive)
    assert message.topic == "late/v1/alerts/late-room"
    alert = message.json
    assert alert["stream"] == {
        "id": "ams-room",
        "room_id": "late-room",
        "profile": "default",
        "biz_type": "default",
        "metadata": {"show": "night-talk"},
    }
    assert alert["risk"]["label"] == "Abuse"
    assert alert["engine"]["name"] == "ams"
    assert alert["evidence"] is None  # AMS had the only copy of the clip
    assert alert["detected_at"] == alert["segment"]["ended_at"]  # late: dated at the audio
    (recorded,) = rows(daemon)
    assert (recorded["segment_id"], recorded["suggestion"]) == (abusive, "Block")
    assert recorded["room_id"] == "late-room"
    # Submitted once before the crash, never again after it: the restart polled the task.
    assert emulator.stats.tasks_by_data_id[abusive] == 1
