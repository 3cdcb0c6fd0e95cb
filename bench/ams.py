"""AMS path under load: ``.venv/bin/python -m bench.ams``.

100 simulated streams cut 15 s segments in real time; an energy gate drops silent ones; the
rest go through ``AmsEngine`` (batched Creates, callbacks, polling fallback, clips served
from signed URLs) to the AMS emulator (15 s slices, about 4x real time). Prints:

* API calls per moderated segment, overall and at steady state (target <= 0.3);
* p50/p95 seconds from a segment's end to its verdict (target: emulator processing + 2 s);
* billed audio minutes against ingested and speech minutes (target <= 1.1x speech).

The corpus is about 40% speech: per stream, runs of "speech" (loud noise, sometimes the
marker tone the judging fake flags) alternate with near-silence. The gate here is a plain
energy gate behind ``SpeechGate``; the daemon's real VAD-based gate can be swapped in. Only
a segment's speech span is sent (``AmsEngine.moderate(..., speech_span=...)``); ``--whole``
sends whole segments instead.
The emulator's on-demand concurrency is raised (``--concurrency``, AMS default 10) because
100 streams need about 10 tasks in flight on average (as a ticket would raise it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import SecretStr

from streamguard.ams.client import AmsClient
from streamguard.ams.delivery import ClipServer
from streamguard.ams.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.ams.engine import AmsEngine
from streamguard.ams.signing import Credentials
from streamguard.config.engine import AmsEngineConfig
from streamguard.engine.verdict import Outcome, Suggestion
from streamguard.ingest.chunk import SAMPLE_RATE, Pcm
from streamguard.ingest.segment import Segment
from streamguard.state.db import Database
from tests.support.engines import ToneEngine

SECRET_ID = "AKIDbenchmark0000000000000000000"
SECRET_KEY = "benchmark-secret-key"


class SpeechGate(Protocol):
    """Finds the part of a segment worth sending to a billed engine (None: no speech)."""

    def speech_span(self, segment: Segment) -> tuple[float, float] | None: ...


class EnergyGate:
    """Speech where 0.5 s frames are louder than an RMS level (a stand-in for the VAD gate).

    The span runs from the first to the last loud frame, padded by one frame each side.
    """

    frame = SAMPLE_RATE // 2

    def __init__(self, rms_threshold: float = 500.0) -> None:
        self.rms_threshold = rms_threshold

    def speech_span(self, segment: Segment) -> tuple[float, float] | None:
        count = len(segment.samples) // self.frame
        frames = segment.samples[: count * self.frame].astype(np.float64).reshape(count, -1)
        loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) >= self.rms_threshold)
        if len(loud) == 0:
            return None
        start = max(0, int(loud[0]) - 1) * self.frame / SAMPLE_RATE
        last = int(loud[-1]) + 2  # frames up to and including the padding frame
        end = segment.duration if last >= count else last * self.frame / SAMPLE_RATE
        return start, end


@dataclass
class Tally:
    ingested_seconds: float = 0.0
    speech_seconds: float = 0.0
    segments: int = 0
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    blocks: int = 0
    steady_sent: int = 0


class StreamAudio:
    """One stream's audio: runs of speech and near-silence, 40% speech on average."""

    def __init__(self, seed: int, speech_share: float, mean_run: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.speech_share = speech_share
        self.mean_run = mean_run
        self.speaking = bool(self.rng.random() < speech_share)
        self.left = self._run()
        self.abusive = False

    def _run(self) -> int:
        share = self.speech_share if self.speaking else 1 - self.speech_share
        seconds = self.rng.exponential(2 * self.mean_run * share)
        return max(1, round(seconds * SAMPLE_RATE))

    def next(self, count: int) -> tuple[Pcm, int]:
        """``count`` samples and how many of them are speech."""
        parts: list[Pcm] = []
        speech = 0
        while count:
            take = min(count, self.left)
            if self.speaking:
                speech += take
                t = np.arange(take) / SAMPLE_RATE
                if self.abusive:
                    values = np.sin(2 * np.pi * 1000.0 * t) * 0.4
                else:
                    values = self.rng.uniform(-0.2, 0.2, take)
            else:
                values = self.rng.uniform(-0.002, 0.002, take)
            parts.append((values * 32767).astype(np.int16))
            count -= take
            self.left -= take
            if self.left == 0:
                self.speaking = not self.speaking
                self.abusive = self.speaking and bool(self.rng.random() < 0.1)
                self.left = self._run()
        return np.concatenate(parts), speech


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-ams-"))
    seconds = args.segment_seconds
    options = EmulatorOptions(
        keys={SECRET_ID: SECRET_KEY},
        slice_seconds=15,
        processing_factor=args.processing_factor,
        ondemand_concurrency=args.concurrency,
    )
    config = AmsEngineConfig(
        secret_id=SecretStr(SECRET_ID),
        secret_key=SecretStr(SECRET_KEY),
        batch_window=args.batch_window,
        processing_ratio=args.processing_factor + 0.02,
        callbacks=not args.no_callbacks,
        callback_grace=3.0,
        poll_interval=1.0,
        biz_type="bench_rooms",
    )
    gate: SpeechGate = EnergyGate()
    tally = Tally()
    emulator = AmsEmulator(ToneEngine(), options, host="127.0.0.1", port=0)
    async with (
        emulator,
        ClipServer(workdir / "clips", b"bench-url-key") as clips,
        AmsClient(emulator.url, Credentials(SECRET_ID, SECRET_KEY)) as client,
        Database(workdir / "state.db") as db,
        AmsEngine(config, db, client=client, clips=clips) as engine,
    ):
        loop_start = time.monotonic()
        attached = datetime.now(UTC)
        steady_from = loop_start + 2 * seconds
        production_end = loop_start + (args.segments + 1) * seconds
        calls_at: dict[str, int] = {}

        async def judge(segment: Segment, span: tuple[float, float], ended: float) -> None:
            verdict = await engine.moderate(
                segment, None, biz_type="bench_rooms", speech_span=None if args.whole else span
            )
            tally.latencies.append(time.monotonic() - ended)
            tally.outcomes[verdict.outcome.value] = tally.outcomes.get(verdict.outcome.value, 0) + 1
            if verdict.outcome is Outcome.MODERATED and verdict.suggestion is Suggestion.BLOCK:
                tally.blocks += 1

        async def stream(index: int, group: asyncio.TaskGroup) -> None:
            audio = StreamAudio(seed=index, speech_share=0.4, mean_run=args.mean_run)
            offset = index * seconds / args.streams
            for seq in range(args.segments):
                end = loop_start + offset + (seq + 1) * seconds
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                samples, speech = audio.next(seconds * SAMPLE_RATE)
                started = attached + timedelta(seconds=offset + seq * seconds)
                segment = Segment(
                    stream_id=f"bench-{index:03d}",
                    seq=seq,
                    attached_at=attached,
                    samples=samples,
                    started_at=started,
                    ended_at=started + timedelta(seconds=seconds),
                    media_start=seq * seconds,
                    gap_before=0.0,
                    flags=frozenset(),
                )
                tally.segments += 1
                tally.ingested_seconds += seconds
                tally.speech_seconds += speech / SAMPLE_RATE
                span = gate.speech_span(segment)
                if span is not None:
                    tally.sent += 1
                    if steady_from <= time.monotonic() <= production_end:
                        tally.steady_sent += 1
                    group.create_task(
                        judge(segment, span, time.monotonic()), name=f"bench.judge[{segment.id}]"
                    )

        async def snapshot() -> None:
            await asyncio.sleep(steady_from - time.monotonic())
            calls_at["start"] = sum(client.calls.values())
            await asyncio.sleep(production_end - time.monotonic())
            calls_at["end"] = sum(client.calls.values())

        async with asyncio.TaskGroup() as group:
            group.create_task(snapshot(), name="bench.snapshot")
            for index in range(args.streams):
                group.create_task(stream(index, group), name=f"bench.stream[{index}]")
        total_calls = sum(client.calls.values())
        stats = emulator.stats
        callbacks_settled = engine.callbacks_settled

    latencies = sorted(tally.latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    processing = seconds * args.processing_factor
    print(f"streams {args.streams}, {args.segments} x {seconds} s segments each")
    print(
        f"segments {tally.segments}, sent to AMS {tally.sent} "
        f"({tally.sent / tally.segments:.0%}), outcomes {tally.outcomes}, Block {tally.blocks}"
    )
    print(f"API calls by action: {dict(client.calls)}")
    print(f"API calls per moderated segment, overall: {total_calls / tally.sent:.3f}")
    steady_calls = calls_at["end"] - calls_at["start"]
    print(
        f"API calls per moderated segment, steady state: {steady_calls / tally.steady_sent:.3f}"
        f" ({steady_calls} calls / {tally.steady_sent} segments)"
    )
    print(f"tasks settled by callback: {callbacks_settled} of {tally.sent}")
    print(
        f"segment end -> verdict: p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, "
        f"max {latencies[-1]:.2f} s (emulator processing {processing:.2f} s; target p95 "
        f"<= {processing + 2:.2f} s)"
    )
    billed = stats.billed_seconds / 60
    print(
        f"minutes: ingested {tally.ingested_seconds / 60:.1f}, speech "
        f"{tally.speech_seconds / 60:.1f} ({tally.speech_seconds / tally.ingested_seconds:.0%}),"
        f" billed {billed:.1f} = {billed / (tally.speech_seconds / 60):.2f}x speech"
    )
    print(
        f"tasks created per DataId > 1: {sum(1 for n in stats.tasks_by_data_id.values() if n > 1)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--segments", type=int, default=6, help="segments per stream")
    parser.add_argument("--segment-seconds", type=int, default=15)
    parser.add_argument("--processing-factor", type=float, default=0.25)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--batch-window", type=float, default=1.5)
    parser.add_argument("--mean-run", type=float, default=60.0, help="mean speech run, s")
    parser.add_argument("--no-callbacks", action="store_true", help="poll only")
    parser.add_argument(
        "--whole", action="store_true", help="send whole segments, not just their speech span"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
