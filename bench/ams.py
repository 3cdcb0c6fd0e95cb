"""AMS path under load: ``.venv/bin/python -m bench.ams``.

Simulated streams (100 by default) cut 15 s segments in real time; each segment goes
through the daemon's own AMS path: ``GatedEngine`` with the real ``SpeechGate`` (energy
pre-check, then the silero voice-activity model) in front of ``AmsEngine`` (batched Creates,
callbacks, polling fallback, clips served from signed URLs), which sends only the speech the
gate found (each run padded, pauses shortened, joined into one clip per segment) to the AMS
emulator (15 s slices, about 4x real time). Prints:

* API calls per moderated segment, overall and at steady state (target <= 0.3);
* p50/p95 seconds from a segment's end to its verdict, the gate included (target: emulator
  processing + 2 s), also less the emulator's processing time of each segment's own clip;
* how much of the speech was inside the clips sent (the gate's and the cut's misses);
* billed audio minutes against ingested and speech minutes (target <= 1.1x speech), and
  against talk minutes (speech plus the pauses between utterances of one talk run);
* segments submitted twice (tasks created per DataId > 1; must be 0).

The corpus is real generated speech, about 40% of the audio: per stream, talk runs
(utterances from ``streamguard.demo.samples.speak``, hibari and espeak-ng voices,
with short pauses, over quiet room tone) alternate with non-speech runs (room tone, or music
or noise loud enough that the gate has to ask the model). Utterances are generated once and
cached under ``$XDG_CACHE_HOME/streamguard/bench-ams``. "Speech" is the utterances' own
length, trimmed of the synthesiser's leading and trailing silence; pauses between them are
not speech. The emulator judges with the test fake (``ToneEngine``); billing does not depend
on the verdict.
The emulator's on-demand concurrency is raised (``--concurrency``, AMS default 10) because
100 streams need about 10 tasks in flight on average (as a ticket would raise it). Segments
count as sent when the emulator created a task for their DataId.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import SecretStr

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Verdict
from streamguard.demo.samples import (
    ESPEAK_VOICES,
    HIBARI_VOICE,
    FloatAudio,
    SampleError,
    music,
    noise,
    silence,
    speak,
)
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.engine import AmsEngine
from streamguard.engines.gated import GatedEngine
from streamguard.engines.local import SpeechGate
from streamguard.state.db import Database
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.signing import Credentials
from streamguard.testing.engines import ToneEngine

SECRET_ID = "AKIDbenchmark0000000000000000000"
SECRET_KEY = "benchmark-secret-key"

SENTENCES = (
    "Hi everyone, welcome back to the room. Grab a seat and say hello.",
    "Thanks for having me. I just got back from the market.",
    "Today we are talking about the new map and the patch notes.",
    "I think the new update looks great, the music is lovely too.",
    "Can everyone hear me okay? My microphone was acting up earlier.",
    "We will take questions at the end, so write them in the chat.",
    "The weather here has been cold and rainy all week.",
    "Did anyone watch the match last night? It went to penalties.",
    "I am cooking pasta tonight with tomatoes from the garden.",
    "Let me share my screen so you can see the schedule.",
    "That is a good point, I had not thought about it that way.",
    "Okay, let's keep it friendly please. Who wants to go next?",
)
ROOM_TONE_DBFS = -60.0
"""Quiet room tone under everything: below the gate's -55 dBFS energy floor."""
BED_DBFS = {"music": -24.0, "noise": -30.0}
"""Non-speech beds loud enough that the gate must ask the model (not just the energy check)."""
SPEECH, PAUSE, OTHER = 0, 1, 2
"""Kinds of corpus audio: an utterance, a pause between utterances of one talk run, the rest."""
SILENCE_LEVEL = 32767.0 * 10 ** (-45 / 20)
"""Samples quieter than -45 dBFS at an utterance's ends are the synthesiser's silence."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamguard" / "bench-ams"


def _trimmed(pcm: Pcm) -> Pcm:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SILENCE_LEVEL)
    return pcm[loud[0] : loud[-1] + 1] if len(loud) else pcm[:0]


def utterances(voices: tuple[str, ...]) -> list[Pcm]:
    """Every sentence in every voice, trimmed; generated once, then read from the cache."""
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    pool: list[Pcm] = []
    for voice in voices:
        for text in SENTENCES:
            key = hashlib.sha256(f"{voice}|{text}".encode()).hexdigest()[:20]
            path = cache / f"{key}.npy"
            if path.exists():
                pcm = np.load(path)
            else:
                pcm = _trimmed(speak(text, voice))
                np.save(path, pcm)
            pool.append(np.asarray(pcm, dtype=np.int16))
    return pool


@dataclass
class Tally:
    ingested_seconds: float = 0.0
    speech_seconds: float = 0.0
    talk_seconds: float = 0.0
    """Speech plus the pauses between utterances of one talk run."""
    segments: int = 0
    judged: list[Judged] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Judged:
    """One segment's verdict: when its audio ended (monotonic), how long the verdict took,
    its seconds of speech, of speech inside the clip sent, and of clip sent."""

    segment_id: str
    ended: float
    latency: float
    speech: float
    speech_sent: float
    clip: float


def _sent(verdict: Verdict, speech: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """Seconds of speech inside what the gate sent to AMS, and seconds sent."""
    if verdict.outcome is Outcome.NO_SPEECH:
        return 0.0, 0.0
    pieces = verdict.details.get("excerpt") or [[0.0, len(speech) / SAMPLE_RATE]]
    inside = sum(
        int(speech[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)].sum()) for a, b in pieces
    )
    return inside / SAMPLE_RATE, sum(b - a for a, b in pieces)


class StreamAudio:
    """One stream's audio: talk runs and non-speech runs, ``speech_share`` speech on average.

    Run lengths are exponential; a talk run is utterances with 0.2-0.8 s pauses, so its
    speech density is below 1 and talk runs get a larger share of time to make up for it.
    """

    def __init__(
        self,
        seed: int,
        pool: list[Pcm],
        beds: dict[str, FloatAudio],
        speech_share: float,
        mean_run: float,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.pool = pool
        self.beds = beds
        mean_utterance = float(np.mean([len(u) for u in pool])) / SAMPLE_RATE
        density = mean_utterance / (mean_utterance + 0.5)
        self.talk_share = min(0.95, speech_share / density)
        self.mean_run = mean_run
        self.pieces: list[tuple[Pcm, int]] = []
        self.speaking = bool(self.rng.random() < self.talk_share)

    def _run_seconds(self) -> float:
        share = self.talk_share if self.speaking else 1 - self.talk_share
        return float(self.rng.exponential(2 * self.mean_run * share))

    def _add_run(self) -> None:
        length = self._run_seconds()
        if self.speaking:
            spoken = 0.0
            while spoken < length:
                utterance = self.pool[int(self.rng.integers(len(self.pool)))]
                pause = silence(float(self.rng.uniform(0.2, 0.8)))
                self.pieces += [(utterance, SPEECH), (pause, PAUSE)]
                spoken += (len(utterance) + len(pause)) / SAMPLE_RATE
            self.pieces[-1] = (self.pieces[-1][0], OTHER)  # the run's end is not talk
        else:
            kind = str(self.rng.choice(["room", "room", "music", "noise"]))
            count = max(1, round(length * SAMPLE_RATE))
            if kind == "room":
                self.pieces.append((np.zeros(count, dtype=np.int16), OTHER))
            else:
                bed = self.beds[kind]
                first = int(self.rng.integers(len(bed)))
                values = np.resize(np.roll(bed, -first), count) * 10 ** (BED_DBFS[kind] / 20)
                self.pieces.append(((values * 32767).astype(np.int16), OTHER))
        self.speaking = not self.speaking

    def next(self, count: int) -> tuple[Pcm, npt.NDArray[np.bool_], int]:
        """``count`` samples over room tone, which of them are speech, how many are talk."""
        parts: list[Pcm] = []
        speech: list[npt.NDArray[np.bool_]] = []
        talk = 0
        while count:
            if not self.pieces:
                self._add_run()
                continue
            piece, kind = self.pieces[0]
            take = min(count, len(piece))
            parts.append(piece[:take])
            speech.append(np.full(take, kind == SPEECH))
            talk += take if kind in (SPEECH, PAUSE) else 0
            if take == len(piece):
                self.pieces.pop(0)
            else:
                self.pieces[0] = (piece[take:], kind)
            count -= take
        audio = np.concatenate(parts).astype(np.float64)
        audio += self.rng.standard_normal(len(audio)) * 32767 * 10 ** (ROOM_TONE_DBFS / 20)
        return np.clip(audio, -32768, 32767).astype(np.int16), np.concatenate(speech), talk


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-ams-"))
    seconds = args.segment_seconds
    voices = (HIBARI_VOICE, *ESPEAK_VOICES) if not args.espeak_only else ESPEAK_VOICES
    prepared = time.monotonic()
    try:
        pool = utterances(voices)
    except SampleError as exc:
        raise SystemExit(f"bench.ams: cannot generate speech ({exc}); try --espeak-only") from exc
    beds = {"music": music(60.0, seed=1), "noise": noise(60.0, seed=2)}
    print(
        f"{len(pool)} utterances ({', '.join(voices)}), "
        f"{sum(len(u) for u in pool) / SAMPLE_RATE:.0f} s, ready in "
        f"{time.monotonic() - prepared:.1f} s",
        flush=True,
    )
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
        speech_pad_seconds=args.speech_pad,
    )
    tally = Tally()
    emulator = AmsEmulator(ToneEngine(), options, host="127.0.0.1", port=0)
    cpu_start = time.process_time()
    async with (
        emulator,
        ClipServer(workdir / "clips", b"bench-url-key") as clips,
        AmsClient(emulator.url, Credentials(SECRET_ID, SECRET_KEY)) as client,
        Database(workdir / "state.db") as db,
        AmsEngine(config, db, client=client, clips=clips) as ams,
    ):
        # What the daemon builds (streamguard.engines.factory): AMS behind the speech gate.
        engine = GatedEngine(ams, SpeechGate(), pad=config.speech_pad_seconds)
        loop_start = time.monotonic()
        attached = datetime.now(UTC)
        steady_from = loop_start + 2 * seconds
        production_end = loop_start + (args.segments + 1) * seconds
        calls_at: dict[str, int] = {}

        async def judge(segment: Segment, speech: npt.NDArray[np.bool_], ended: float) -> None:
            verdict = await engine.moderate(segment, biz_type="bench_rooms")
            latency = time.monotonic() - ended
            speech_sent, clip = _sent(verdict, speech)
            spoken = float(speech.sum()) / SAMPLE_RATE
            tally.judged.append(Judged(segment.id, ended, latency, spoken, speech_sent, clip))
            tally.outcomes[verdict.outcome.value] = tally.outcomes.get(verdict.outcome.value, 0) + 1

        async def stream(index: int, group: asyncio.TaskGroup) -> None:
            audio = StreamAudio(index, pool, beds, args.speech_share, args.mean_run)
            offset = index * seconds / args.streams
            for seq in range(args.segments):
                end = loop_start + offset + (seq + 1) * seconds
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                samples, speech, talk = audio.next(seconds * SAMPLE_RATE)
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
                tally.speech_seconds += float(speech.sum()) / SAMPLE_RATE
                tally.talk_seconds += talk / SAMPLE_RATE
                group.create_task(
                    judge(segment, speech, time.monotonic()),
                    name=f"bench.judge[{segment.id}]",
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
        callbacks_settled = ams.callbacks_settled
        gate_failures = engine.gate_failures
        wall = time.monotonic() - loop_start
    cpu = time.process_time() - cpu_start

    # Sent = the emulator saw a task for it (ground truth, not what the verdict says).
    sent = [j for j in tally.judged if j.segment_id in stats.tasks_by_data_id]
    gated = [j for j in tally.judged if j.segment_id not in stats.tasks_by_data_id]
    steady_sent = sum(1 for j in sent if steady_from <= j.ended <= production_end)
    latencies = sorted(j.latency for j in sent)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    gated_latencies = sorted(j.latency for j in gated)
    processing = seconds * args.processing_factor
    # The emulator takes processing_factor x the clip's length; clips are only the speech.
    beyond = sorted(j.latency - j.clip * args.processing_factor for j in sent)
    print(f"streams {args.streams}, {args.segments} x {seconds} s segments each")
    print(
        f"segments {tally.segments}, sent to AMS {len(sent)} "
        f"({len(sent) / tally.segments:.0%}), outcomes {tally.outcomes}"
    )
    print(
        f"gate: dropped {len(gated)} segments holding {sum(j.speech for j in gated):.1f} s of "
        f"speech (missed); sent {sum(1 for j in sent if j.speech == 0)} segments without "
        f"speech; {sum(1 for j in tally.judged if j.speech > 0)} segments had speech; "
        f"gate failures {gate_failures}"
    )
    print(f"API calls by action: {dict(client.calls)}")
    print(f"API calls per moderated segment, overall: {total_calls / len(sent):.3f}")
    steady_calls = calls_at["end"] - calls_at["start"]
    print(
        f"API calls per moderated segment, steady state: {steady_calls / steady_sent:.3f}"
        f" ({steady_calls} calls / {steady_sent} segments)"
    )
    print(f"tasks settled by callback: {callbacks_settled} of {len(sent)}")
    print(
        f"segment end -> verdict, segments sent to AMS (gate included): p50 "
        f"{statistics.median(latencies):.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s "
        f"(emulator processing {processing:.2f} s; target p95 <= {processing + 2:.2f} s)"
    )
    print(
        f"segment end -> verdict minus the emulator's processing of that clip: p50 "
        f"{statistics.median(beyond):.2f} s, p95 {beyond[int(0.95 * (len(beyond) - 1))]:.2f} s"
        f" (target p95 <= 2 s)"
    )
    if gated_latencies:
        print(
            f"segment end -> no-speech verdict from the gate: p50 "
            f"{statistics.median(gated_latencies):.2f} s, max {gated_latencies[-1]:.2f} s"
        )
    billed = stats.billed_seconds / 60
    print(
        f"minutes: ingested {tally.ingested_seconds / 60:.1f}, speech "
        f"{tally.speech_seconds / 60:.1f} ({tally.speech_seconds / tally.ingested_seconds:.0%}),"
        f" billed {billed:.1f} = {billed / (tally.speech_seconds / 60):.2f}x speech; talk "
        f"(speech and the pauses inside a talk run) {tally.talk_seconds / 60:.1f}, billed "
        f"{billed / (tally.talk_seconds / 60):.2f}x talk"
    )
    spoken = sum(j.speech for j in tally.judged)
    print(
        f"speech inside the clips sent: {sum(j.speech_sent for j in tally.judged):.1f} s of "
        f"{spoken:.1f} s ({sum(j.speech_sent for j in tally.judged) / spoken:.1%})"
    )
    print(
        f"tasks created per DataId > 1: {sum(1 for n in stats.tasks_by_data_id.values() if n > 1)}"
    )
    print(f"process CPU {cpu:.1f} s over {wall:.1f} s wall ({cpu / wall:.0%} of a core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--segments", type=int, default=6, help="segments per stream")
    parser.add_argument("--segment-seconds", type=int, default=15)
    parser.add_argument("--processing-factor", type=float, default=0.25)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--batch-window", type=float, default=1.5)
    parser.add_argument("--mean-run", type=float, default=30.0, help="mean run length, s")
    parser.add_argument("--speech-share", type=float, default=0.4)
    parser.add_argument(
        "--speech-pad", type=float, default=0.15, help="seconds kept around each speech run"
    )
    parser.add_argument("--no-callbacks", action="store_true", help="poll only")
    parser.add_argument(
        "--espeak-only", action="store_true", help="skip the hibari voice (needs no extra)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
