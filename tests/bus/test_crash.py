"""The publishing process killed with SIGKILL: waiting alerts go out after a restart, and
consumers see its Last Will."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import jsonschema

from streamguard.core.topics import Topics
from streamguard.moderation.alert import alert_schema
from streamguard.testing.broker import Mosquitto
from tests.support.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """``python -m tests.support.outbox_worker`` as a real child process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, db: Path, port: int, prefix: str, *args: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.outbox_worker",
            "--db",
            str(db),
            "--port",
            str(port),
            "--prefix",
            prefix,
            *args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def said(self, line: str) -> None:
        """Wait for the worker to print ``line``."""
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            while True:
                text = (await self.process.stdout.readline()).decode()
                assert text, f"worker exited with {await self.process.wait()} before {line!r}"
                if text.strip() == line:
                    return

    async def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup, no graceful disconnect
        assert await self.process.wait() == -9

    async def finished(self) -> int:
        async with asyncio.timeout(30):
            return await self.process.wait()


async def test_alerts_waiting_in_the_outbox_survive_sigkill(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = f"crash-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "state.db"
    consumer = f"c-{uuid.uuid4().hex[:8]}"
    async with Subscriber(mosquitto.port, [f"{prefix}/v1/alerts/+"], consumer) as sub:
        mosquitto.stop()
        try:
            worker = await Worker.start(db, mosquitto.port, prefix, "--alerts", "5")
            await worker.said("queued 5")  # in SQLite, and the bus is away
            await worker.kill()
        finally:
            mosquitto.start()
        restarted = await Worker.start(db, mosquitto.port, prefix, "--drain")
        await restarted.said("drained")
        assert await restarted.finished() == 0
        got = await sub.wait_until(lambda r: len({m.json["alert_id"] for m in r}) >= 6)
    unique = list({m.json["alert_id"]: m.json for m in got}.values())
    events = [a["incident"]["event"] for a in unique]
    segments = [a["segment"]["seq"] for a in unique]
    # The killed run's alerts, then the end of the incident it left open (from the journal).
    assert events == ["new", "update", "update", "update", "update", "end"]
    assert segments == [0, 1, 2, 3, 4, 4]
    assert len({a["incident"]["id"] for a in unique}) == 1
    assert unique[-1]["incident"]["segments"] == 5
    for alert in unique:
        jsonschema.validate(alert, alert_schema())


async def test_last_will_marks_a_killed_instance_offline(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = f"will-{uuid.uuid4().hex[:8]}"
    topic = Topics(prefix).instance("worker")
    async with Subscriber(mosquitto.port, [topic], f"c-{uuid.uuid4().hex[:8]}") as sub:
        worker = await Worker.start(tmp_path / "state.db", mosquitto.port, prefix)
        await worker.said("connected")
        await sub.wait_until(lambda r: any(m.json["state"] == "online" for m in r))
        await worker.kill()
        got = await sub.wait_until(lambda r: r[-1].json["state"] == "offline")
    assert got[-1].json == {
        "schema_version": "1",
        "instance": "worker",
        "state": "offline",
        "at": None,
    }
    # Retained: a consumer arriving later learns the instance is offline.
    async with Subscriber(mosquitto.port, [topic], f"late-{uuid.uuid4().hex[:8]}") as late:
        (retained,) = await late.wait_until(lambda r: len(r) >= 1)
    assert retained.retain
    assert retained.json["state"] == "offline"
