"""AMS task tracking in fleet mode: what the shared task store costs the database.

    .venv/bin/python -m bench.fleet_ams [--streams 100] [--segment-seconds 15]
                                        [--minutes 1] [--lease 15] [--commit-window 0.5]

One instance holds ``--streams`` streams (leases in a real PostgreSQL started here) and
sends every segment of every stream (the worst case: each one has speech) through
``AmsEngine`` with the shared ``PgTaskStore`` to the AMS emulator over loopback HTTP
(callbacks on, the test fake judging). Segments are cut in real time, one per stream every
``--segment-seconds``, the streams staggered. After one segment length of warm-up, the
store's transactions are counted for ``--minutes``: its writes (the rows of a Create before
it, their task ids after it, each settle), which share transactions within
``--commit-window`` seconds, and its reads (the adoption scan every third of a lease);
reported per segment and per stream per minute, with the mean number of tasks per Create.

The lease loop's own cost is ``bench.fleet``'s figure; results and alerts are not counted
here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from streamguard.config.engine import AmsEngineConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.segment import Segment
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.engine import AmsEngine
from streamguard.state.db import Database
from streamguard.state.desired import Origin
from streamguard.state.postgres.ams_tasks import PgTaskStore
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.signing import Credentials
from streamguard.testing.engines import ToneEngine
from streamguard.testing.postgres import PostgresServer

SECRET_ID = "AKIDbenchmark0000000000000000000"
SECRET_KEY = "benchmark-secret-key"


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Loud noise: every segment is sent (the fake judge passes it)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.3, 0.3, round(seconds * SAMPLE_RATE)) * 32767).astype(np.int16)


async def hold_streams(db: PgDatabase, streams: int, lease: float) -> Fleet:
    desired = PgDesiredStreams(db)
    for n in range(streams):
        config = StreamConfig(id=f"room-{n}", url=f"http://127.0.0.1/{n}", room=f"r{n}")
        await desired.put(config, Origin.CONFIG)
    fleet = Fleet(db, "i0", lease_seconds=lease)
    await fleet.join()
    while len(fleet.fences) < streams:
        await fleet.claim()
    return fleet


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    seconds, streams = args.segment_seconds, args.streams
    with PostgresServer() as server:
        async with PgDatabase(server.create_database()) as db:
            fleet = await hold_streams(db, streams, args.lease)
            tasks = PgTaskStore(
                db,
                "i0",
                fleet.fence,
                grace=args.lease,
                scan_every=args.lease / 3,
                commit_window=args.commit_window,
            )
            options = EmulatorOptions(
                keys={SECRET_ID: SECRET_KEY}, slice_seconds=15, ondemand_concurrency=200
            )
            config = AmsEngineConfig(
                secret_id=SecretStr(SECRET_ID),
                secret_key=SecretStr(SECRET_KEY),
                processing_ratio=0.3,
                callback_grace=3.0,
                biz_type="bench_rooms",
            )
            async with (
                AmsEmulator(ToneEngine(), options, host="127.0.0.1", port=0) as emulator,
                ClipServer(workdir / "clips", b"bench-url-key") as clips,
                AmsClient(emulator.url, Credentials(SECRET_ID, SECRET_KEY)) as client,
                Database(workdir / "state.db") as sqlite,
                AmsEngine(config, sqlite, client=client, clips=clips, store=tasks) as engine,
            ):
                counted = await run(engine, tasks, emulator, streams, seconds, args.minutes)
    report(counted, streams, args.minutes)


async def run(
    engine: AmsEngine,
    tasks: PgTaskStore,
    emulator: AmsEmulator,
    streams: int,
    seconds: float,
    minutes: float,
) -> dict[str, float]:
    start, attached = time.monotonic(), datetime.now(UTC)
    window = (start + seconds, start + seconds + minutes * 60)
    marks: dict[str, Counter[str]] = {}
    creates: dict[str, int] = {}
    segments = [0]

    async def stream(index: int, group: asyncio.TaskGroup) -> None:
        offset = index * seconds / streams
        seq = 0
        while (end := start + offset + (seq + 1) * seconds) < window[1]:
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            begun = attached + timedelta(seconds=offset + seq * seconds)
            segment = Segment(
                stream_id=f"room-{index}", seq=seq, attached_at=attached,
                samples=speech_like(seconds, index * 1000 + seq), started_at=begun,
                ended_at=begun + timedelta(seconds=seconds), media_start=seq * seconds,
                gap_before=0.0, flags=frozenset(),
            )  # fmt: skip
            if window[0] <= time.monotonic():
                segments[0] += 1
            group.create_task(engine.moderate(segment), name=f"bench.moderate[{segment.id}]")
            seq += 1

    async def snapshot(at: float, name: str) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        ops = Counter({f"op:{kind}": n for kind, n in tasks.writes.ops.items()})
        marks[name] = Counter(tasks.queries) + ops
        marks[name]["write transactions"] = tasks.writes.transactions
        creates[name] = emulator.stats.handled["CreateAudioModerationTask"]

    async with asyncio.TaskGroup() as group:
        group.create_task(snapshot(window[0], "start"), name="bench.mark[start]")
        group.create_task(snapshot(window[1], "end"), name="bench.mark[end]")
        for index in range(streams):
            group.create_task(stream(index, group), name=f"bench.stream[{index}]")
    counted: dict[str, float] = dict(marks["end"] - marks["start"])
    counted["segments"] = segments[0]
    counted["creates"] = creates["end"] - creates["start"]
    return counted


def report(counted: dict[str, float], streams: int, minutes: float) -> None:
    segments, creates = counted.pop("segments"), counted.pop("creates")
    ops = {k.removeprefix("op:"): v for k, v in counted.items() if k.startswith("op:")}
    reads = {k: v for k, v in counted.items() if k in ("scan", "read")}
    writes = counted.get("write transactions", 0)
    total = writes + sum(reads.values())
    print(f"{streams} streams, every segment sent, {minutes:g} min measured")
    print(f"  segments cut: {segments:.0f}; Create calls: {creates:.0f}", end="")
    print(f" ({segments / max(creates, 1):.1f} tasks per call)")
    shown = ", ".join(f"{kind} {count:.0f}" for kind, count in sorted(ops.items()))
    print(f"  writes: {sum(ops.values()):.0f} ({shown}) in {writes:.0f} transactions")
    shown = ", ".join(f"{kind} {count:.0f}" for kind, count in sorted(reads.items()))
    print(f"  reads: {sum(reads.values()):.0f} ({shown or 'none'})")
    print(f"  task-store transactions: {total:.0f}")
    print(f"  per segment: {total / max(segments, 1):.2f}")
    print(f"  per stream per minute: {total / streams / minutes:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--segment-seconds", type=float, default=15.0)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--commit-window", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-ams-") as workdir:
        asyncio.run(bench(args, Path(workdir)))


if __name__ == "__main__":
    main()
