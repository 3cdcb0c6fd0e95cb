"""One soak run: set the world up, let the driver loose, wind down, and prove."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.soak.bus import Consumer
from bench.soak.daemon import Daemon
from bench.soak.driver import Driver, Timing
from bench.soak.media import PilotJudge, broadcast
from bench.soak.proof import Proof, prove
from bench.soak.sources import LiveRoom
from bench.soak.world import ENV, SECRET_ID, SECRET_KEY, SEGMENT_SECONDS, config, file_rooms
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.testing.broker import Mosquitto
from streamguard.testing.disk import SmallDisk
from streamguard.testing.net import free_port

__all__ = ["Outcome", "Settings", "soak"]


@dataclass(frozen=True)
class Settings:
    minutes: float
    rooms: int
    seed: int
    workdir: Path
    disk_size: str = "96m"
    timing: Timing = field(default_factory=Timing)


@dataclass
class Outcome:
    """Everything the report prints."""

    proof: Proof
    driver: Driver
    daemon: Daemon
    consumer: Consumer
    final_exit: int | None
    disk_note: str
    settle_runs: int
    seconds: float


async def soak(settings: Settings) -> Outcome:
    began = time.monotonic()
    media, seconds = await asyncio.to_thread(broadcast, settings.minutes * 60 + 300)
    rng = random.Random(settings.seed)
    rooms = {
        f"room-{n:02d}": LiveRoom(media, seconds, rng.uniform(0, 60), settings.seed + n)
        for n in range(1, settings.rooms + 1)
    }
    disk = SmallDisk(settings.workdir / "state", settings.disk_size)
    refused = await asyncio.to_thread(disk.mount)
    disk_note = f"tmpfs of {settings.disk_size}" if refused is None else f"no disk fault: {refused}"
    broker = Mosquitto(_dir(settings.workdir / "broker"))
    await asyncio.to_thread(broker.start)
    try:
        async with AsyncExitStack() as stack:
            emulator = await stack.enter_async_context(_emulator())
            for room in rooms.values():
                await stack.enter_async_context(room)
            consumer = Consumer(broker.port, "soak", "soak-consumer")
            daemon = Daemon(settings.workdir, free_port(), ENV)
            daemon.config.write_text(
                config(
                    settings.workdir,
                    api_port=daemon.api_port,
                    broker_port=broker.port,
                    emulator_url=emulator.url,
                    delivery_port=free_port(),
                    rooms=rooms,
                ),
                encoding="utf-8",
            )
            driver = Driver(
                seed=settings.seed,
                rooms=list(rooms.values()),
                broker=broker,
                emulator=emulator,
                daemon=daemon,
                disk=disk if refused is None else None,
                timing=settings.timing,
            )
            async with asyncio.TaskGroup() as group:
                listening = group.create_task(consumer.run(), name="soak.consumer")
                await asyncio.wait_for(consumer.connected.wait(), 30)
                final_exit, settles = await _drive(settings, driver, rooms)
                await _await_deliveries(settings, consumer)
                listening.cancel()
            proof = prove(
                settings.workdir / "state" / "streamguard.db",
                rooms,
                daemon.lifetimes,
                consumer,
                SEGMENT_SECONDS,
            )
    finally:
        await asyncio.to_thread(broker.stop)
        kept = settings.workdir / "state" / "streamguard.db"
        if kept.exists():  # out of the tmpfs, for a look afterwards (--keep)
            await asyncio.to_thread(shutil.copy2, kept, settings.workdir / "streamguard.db")
        await asyncio.to_thread(disk.unmount)
    elapsed = time.monotonic() - began
    return Outcome(proof, driver, daemon, consumer, final_exit, disk_note, settles, elapsed)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _emulator() -> AmsEmulator:
    options = EmulatorOptions(
        keys={SECRET_ID: SECRET_KEY},
        slice_seconds=15,
        processing_factor=0.05,
        ondemand_concurrency=40,
    )
    return AmsEmulator(PilotJudge(), options)


async def _drive(
    settings: Settings, driver: Driver, rooms: dict[str, LiveRoom]
) -> tuple[int | None, int]:
    """Start the daemon, attach the API rooms, inject faults until the deadline, then wind
    down; return the exit code of the SIGTERM and how many settle runs were needed."""
    daemon = driver.daemon
    await asyncio.to_thread(daemon.start)
    for name, room in rooms.items():
        if name not in file_rooms(rooms):
            body = {"id": name, "url": room.url, "room": name}
            status, reply = await asyncio.to_thread(daemon.request, "POST", "/v1/streams", body)
            if status != 201:
                raise RuntimeError(f"attaching {name}: {status} {reply}")
    deadline = time.monotonic() + settings.minutes * 60
    async with asyncio.TaskGroup() as group:
        watching = group.create_task(driver.monitor(), name="soak.monitor")
        async with asyncio.TaskGroup() as faults:
            faults.create_task(driver.room_faults(deadline), name="soak.room-faults")
            faults.create_task(driver.system_faults(deadline), name="soak.system-faults")
        await driver.restore()
        await asyncio.sleep(max(0.0, deadline - time.monotonic()) + 20)  # backlogs drain
        async with driver.lifecycle:
            watching.cancel()
    await _check_all_attached(driver.daemon, rooms)
    final_exit = await asyncio.to_thread(daemon.stop)
    for room in rooms.values():
        await room.kill()  # the broadcast is over: settle runs hear nothing new
    settles = await _settle(daemon)
    return final_exit, settles


async def _check_all_attached(daemon: Daemon, rooms: dict[str, LiveRoom]) -> None:
    status, reply = await asyncio.to_thread(daemon.request, "GET", "/v1/streams")
    listed = {s["id"] for s in reply["streams"]} if status == 200 else set()
    missing = sorted(set(rooms) - listed)
    if missing:
        raise RuntimeError(f"rooms no longer attached after the faults: {missing}")


async def _settle(daemon: Daemon, limit: float = 240.0) -> int:
    """While AMS verdicts or alerts are still waiting in the database, run the daemon again
    (as a restart would) until nothing waits; return how many runs that took."""
    runs = 0
    db = daemon.workdir / "state" / "streamguard.db"
    while _waiting(db) and runs < 3:
        runs += 1
        await asyncio.to_thread(daemon.start)
        deadline = time.monotonic() + limit
        while _waiting(db) and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(1.0)
        await asyncio.to_thread(daemon.stop)
    return runs


def _waiting(db: Path) -> bool:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        ams = conn.execute(
            "SELECT count(*) FROM ams_segments WHERE state NOT IN ('done', 'failed')"
        ).fetchone()[0]
        outbox = conn.execute("SELECT count(*) FROM alerts_outbox").fetchone()[0]
    return bool(ams or outbox)


async def _await_deliveries(settings: Settings, consumer: Consumer, limit: float = 60.0) -> None:
    """Give the broker time to hand over what it queued for the consumer."""
    db = settings.workdir / "state" / "streamguard.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        raised = {row[0] for row in conn.execute("SELECT alert_id FROM incident_alerts")}
    deadline = time.monotonic() + limit
    while not raised <= set(consumer.deliveries) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
