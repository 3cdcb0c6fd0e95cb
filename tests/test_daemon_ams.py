"""The daemon on the AMS engine, end to end over real HTTP: a room's segments are gated,
submitted to the AMS emulator, fetched back from the daemon's signed URLs, judged there by
the local engine, and their verdicts recorded; silent segments are never submitted."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import numpy as np

from streamguard.ams.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.engine.local import LocalEngine
from streamguard.engine.local.samples import room
from streamguard.ingest.chunk import SAMPLE_RATE
from streamguard.ingest.encoder import encode_pcm
from tests.support.ams import KEYS, SECRET_ID, SECRET_KEY
from tests.support.daemon import DaemonProcess
from tests.support.net import free_port


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
        env = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
        daemon = DaemonProcess(tmp_path / "daemon", config, env=env)
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
