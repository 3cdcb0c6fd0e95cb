"""AMS live mode (LIVE_AUDIO) under load: ``.venv/bin/python -m bench.ams_live``.

N Icecast-like live streams on loopback broadcast at real time (an mp3 of 15 s runs of
speech-like noise, with a 1 kHz marker tone in every fourth run, which the emulator's test
judge blocks). Each stream is moderated the live way: ``AmsEngine.live`` creates one
LIVE_AUDIO task per stream; the AMS emulator pulls the stream with streamguard's own ingest,
cuts 15 s slices and judges them; the engine learns the slices by polling DescribeTaskDetail
every ``--poll`` seconds (a callback wakes a poll at once: hits only, or every slice with
``--full-callbacks``, the console's switch). Prints:

* API calls per stream-hour (steady state, after every task was created), by action;
* seconds from the end of a slice's audio to its verdict here (p50/p95/max): the audio end
  is the slice's ``OffsetTime`` (whole Unix seconds, so up to 1 s early) plus its Duration;
* billed minutes against minutes broadcast.

Everything (servers, emulator, engine) runs in one process, like ``bench.ams``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.verdict import Suggestion
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.engine import AmsEngine
from streamguard.engines.ams.live import LiveStream
from streamguard.ingest.encoder import encode_pcm
from streamguard.state.db import Database
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.signing import Credentials
from streamguard.testing.engines import ToneEngine
from streamguard.testing.media_servers import IcecastServer

SECRET_ID = "AKIDbenchmark0000000000000000000"
SECRET_KEY = "benchmark-secret-key"
SLICE = 15


def broadcast(seconds: int) -> Pcm:
    """Runs of 15 s: noise (clean speech to the judge), every fourth a marker tone (a hit)."""
    rng = np.random.default_rng(7)
    runs = []
    for index in range(seconds // SLICE + 1):
        if index % 4 == 3:
            t = np.arange(SLICE * SAMPLE_RATE) / SAMPLE_RATE
            runs.append(np.sin(2 * np.pi * 1000 * t) * 9000)
        else:
            runs.append(rng.standard_normal(SLICE * SAMPLE_RATE) * 3000)
    pcm: Pcm = np.clip(np.concatenate(runs), -32768, 32767).astype(np.int16)
    return pcm


async def follow(live: LiveStream, latencies: list[float], hits: list[int], until: float) -> None:
    async with live:
        while time.monotonic() < until:
            try:
                judged = await asyncio.wait_for(anext(live), until - time.monotonic())
            except TimeoutError:
                return
            latencies.append(datetime.now(UTC).timestamp() - judged.segment.ended_at.timestamp())
            hits.append(judged.verdict.suggestion is Suggestion.BLOCK)


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-ams-live-"))
    media = workdir / "room.mp3"
    audio_seconds = args.seconds + 60
    await asyncio.to_thread(encode_pcm, broadcast(audio_seconds), media, "mp3", 64_000)
    content = media.read_bytes()
    options = EmulatorOptions(
        keys={SECRET_ID: SECRET_KEY},
        slice_seconds=SLICE,
        processing_factor=0.25,
        full_callbacks=args.full_callbacks,
    )
    config = AmsEngineConfig(
        secret_id=SecretStr(SECRET_ID),
        secret_key=SecretStr(SECRET_KEY),
        mode="live",
        live_poll_interval=args.poll,
        biz_type="bench_live",
    )
    latencies: list[float] = []
    hits: list[int] = []
    async with AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(AmsEmulator(ToneEngine(), options))
        clips = await stack.enter_async_context(ClipServer(workdir / "clips", b"bench-key"))
        client = await stack.enter_async_context(
            AmsClient(emulator.url, Credentials(SECRET_ID, SECRET_KEY))
        )
        db = await stack.enter_async_context(Database(workdir / "state.db"))
        engine = await stack.enter_async_context(AmsEngine(config, db, client=client, clips=clips))
        servers = [
            await stack.enter_async_context(IcecastServer(content, audio_seconds))
            for _ in range(args.streams)
        ]
        started = time.monotonic()
        until = started + args.seconds
        attached = datetime.now(UTC)
        lives = [
            engine.live(server.url, f"live-{index:03d}", attached)
            for index, server in enumerate(servers)
        ]
        async with asyncio.TaskGroup() as group:
            for index, live in enumerate(lives):
                group.create_task(follow(live, latencies, hits, until), name=f"bench.live[{index}]")
            await asyncio.sleep(min(args.seconds / 2, 2 * SLICE))
            calls_at_start = dict(client.calls)
            steady_from = time.monotonic()
            await asyncio.sleep(max(0.0, until - 1.0 - time.monotonic()))
            calls = {k: v - calls_at_start.get(k, 0) for k, v in client.calls.items()}
            steady = time.monotonic() - steady_from
        billed = emulator.stats.billed_seconds
        wall = time.monotonic() - started
    per_hour = sum(calls.values()) / (args.streams * steady / 3600)
    ordered = sorted(latencies)
    print(
        f"live streams {args.streams} x {args.seconds} s, slices {SLICE} s, poll {args.poll} s,"
        f" callbacks {'every slice' if args.full_callbacks else 'hits only'}"
    )
    print(f"slices judged {len(latencies)} ({sum(hits)} blocked), wall {wall:.0f} s")
    print(
        f"API calls per stream-hour (steady, {steady:.0f} s): {per_hour:.0f} "
        f"(by action over the window: {calls}; all calls {dict(client.calls)})"
    )
    print(
        f"slice audio end -> verdict: p50 {statistics.median(ordered):.2f} s, p95 "
        f"{ordered[int(0.95 * (len(ordered) - 1))]:.2f} s, max {ordered[-1]:.2f} s "
        f"(OffsetTime is whole seconds: up to 1 s early)"
    )
    blocked = sorted(lat for lat, hit in zip(latencies, hits, strict=True) if hit)
    if blocked:
        print(
            f"the same for blocked slices: p50 {statistics.median(blocked):.2f} s, max "
            f"{blocked[-1]:.2f} s"
        )
    print(
        f"billed {billed / 60:.1f} min for {args.streams * args.seconds / 60:.1f} min broadcast "
        "(the tail still being pulled at the end included)"
    )
    print("machine: shared with other jobs; figures are one run, not a reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=120, help="seconds each stream runs")
    parser.add_argument("--poll", type=float, default=15.0, help="live_poll_interval, seconds")
    parser.add_argument(
        "--full-callbacks", action="store_true", help="the console's every-slice callbacks"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
