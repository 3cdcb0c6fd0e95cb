"""Local engine evaluation: keyword recall/precision, false alerts, CPU cost, rooms per core.

    .venv/bin/python -m bench.engine_eval [--minutes 5] [--write docs/benchmarks.md]

All audio is generated here (espeak-ng and hibari-tts voices, numpy music and noise), so the
figures are for synthetic speech: a floor for robotic voices, optimistic for natural ones.
CPU time is ``time.process_time()`` of this process (all threads) with one engine worker and
one model thread, so "per core" figures are per fully used core.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Verdict
from streamguard.demo.samples import (
    ESPEAK_VOICES,
    HIBARI_VOICE,
    mix,
    music,
    noise,
    silence,
    speak,
)
from streamguard.engines.local import LocalEngine

VOICES = (HIBARI_VOICE, *ESPEAK_VOICES)
FLAGGED = (
    ("You are such an idiot.", "en-insults"),
    ("Shut up and sit down.", "en-insults"),
    ("Nobody likes you, loser.", "en-insults"),
    ("I am going to kill you.", "en-threats"),
    ("I will find where you live.", "en-threats"),
    ("Somebody should shoot you.", "en-threats"),
    ("This is bullshit, man.", "en-profanity"),
    ("What the fuck is this?", "en-profanity"),
    ("He is a total asshole.", "en-profanity"),
    ("Stop watching porn in the chat.", "en-sexual"),
    ("Come on, send nudes.", "en-sexual"),
    ("Get free followers today.", "en-spam"),
    ("Use my promo code at checkout.", "en-spam"),
    ("Click the link in my profile.", "en-spam"),
    ("Go to hell, you moron.", "en-insults"),
    ("You are worthless and pathetic.", "en-insults"),
)
NEUTRAL = (
    "The skill you need is patience.",
    "We are planning a picnic by the river.",
    "The new map looks really good today.",
    "Can you hear me now? My microphone was off.",
    "I had pasta for dinner with my family.",
    "Let's start the next round in five minutes.",
    "The weather has been lovely all week.",
    "Thanks everyone for joining the stream.",
    "I think the patch notes came out yesterday.",
    "My cat keeps walking across the keyboard.",
    "Who wants to play the next song?",
    "The train was late again this morning.",
    "We should read the rules before we start.",
    "Happy birthday, I hope you have a great day.",
    "I am learning to play the guitar.",
    "Please keep the chat friendly and kind.",
)
CONDITIONS: dict[str, tuple[str, float] | None] = {
    "clean": None,
    "10 dB noise": ("noise", 10.0),
    "10 dB music": ("music", 10.0),
    "0 dB noise+music": ("both", 0.0),
    "telephone": ("telephone", 0.0),
}
"""Acoustic conditions; "telephone" is clean speech through a telephone channel."""
DEFAULT_CONDITIONS = ("clean", "10 dB noise", "10 dB music", "0 dB noise+music")
ATTACHED = datetime(2026, 1, 1, tzinfo=UTC)


def _segment(samples: Pcm, seq: int, stream: str = "bench") -> Segment:
    return Segment(stream, seq, ATTACHED, samples, ATTACHED, ATTACHED, 0.0, 0.0, frozenset())


def telephone(pcm: Pcm) -> Pcm:
    """``pcm`` (16 kHz) through a telephone channel: 300-3400 Hz, 8 kHz, 8-bit μ-law, back.

    μ-law is the continuous companding curve (mu = 255) quantised to 8 bits, close to
    G.711's segmented table; the result is resampled to 16 kHz for the engine.
    """
    x = pcm.astype(np.float64) / 32768.0
    frequencies = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    spectrum = np.fft.rfft(x)
    spectrum[(frequencies < 300) | (frequencies > 3400)] = 0
    narrow = np.fft.irfft(spectrum, len(x))[::2]
    mu = 255.0
    coded = np.sign(narrow) * np.log1p(mu * np.minimum(np.abs(narrow), 1.0)) / np.log1p(mu)
    coded = np.round(coded * 127) / 127
    decoded = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    up = np.interp(np.arange(len(x)) / 2, np.arange(len(decoded)), decoded)
    spectrum = np.fft.rfft(up)
    spectrum[frequencies > 4000] = 0
    return (np.clip(np.fft.irfft(spectrum, len(x)), -1, 1) * 32767).astype(np.int16)


def _background(kind: str, seconds: float, seed: int) -> np.ndarray:
    if kind == "noise":
        return noise(seconds, seed)
    if kind == "music":
        return music(seconds, seed)
    return noise(seconds, seed) + music(seconds, seed + 1)


def _utterance_segment(
    speech: Pcm, condition: str, seed: int, seq: int, stream: str = "bench"
) -> Segment:
    audio = np.concatenate([silence(1.0), speech, silence(1.0)])
    spec = CONDITIONS[condition]
    if spec is not None and spec[0] == "telephone":
        audio = telephone(audio)
    elif spec is not None:
        kind, snr = spec
        audio = mix(audio, _background(kind, len(audio) / SAMPLE_RATE, seed), snr)
    return _segment(audio, seq, stream)


@dataclass
class Accuracy:
    condition: str
    true_positive: int = 0
    flagged: int = 0
    false_positive: int = 0
    cpu_seconds: float = 0.0
    audio_seconds: float = 0.0
    misses: list[str] | None = None
    rechecked: int = 0
    """Hits that only the second listen found (true or false)."""

    @property
    def recall(self) -> float:
        return self.true_positive / self.flagged

    @property
    def precision(self) -> float:
        predicted = self.true_positive + self.false_positive
        return self.true_positive / predicted if predicted else 1.0


def _rechecked(verdict: Verdict) -> int:
    recheck = verdict.details.get("recheck")
    return int(bool(recheck and recheck["corrections"]))


async def _timed(engine: LocalEngine, segment: Segment) -> tuple[Verdict, float]:
    started = time.process_time()
    verdict = await engine.moderate(segment)
    return verdict, time.process_time() - started


async def accuracy(
    engine: LocalEngine, voices: Sequence[str], conditions: Sequence[str] = DEFAULT_CONDITIONS
) -> list[Accuracy]:
    """Recall and precision of keyword hits over flagged and neutral utterances."""
    # Each flagged sentence in two voices (a natural and a robotic one, or two robotic ones).
    flagged = [
        (speak(text, voices[(n + shift) % len(voices)]), library, text)
        for n, (text, library) in enumerate(FLAGGED)
        for shift in (0, 2)
    ]
    neutral = [speak(text, voices[(n + 1) % len(voices)]) for n, text in enumerate(NEUTRAL)]
    results = []
    for condition in conditions:
        result = Accuracy(condition, misses=[])
        for seq, (speech, library, text) in enumerate(flagged):
            segment = _utterance_segment(speech, condition, seq, seq, stream=f"bench-{seq}")
            verdict, cpu = await _timed(engine, segment)
            result.flagged += 1
            result.cpu_seconds += cpu
            result.audio_seconds += segment.duration
            if library in {k.library_id for k in verdict.keywords}:
                result.true_positive += 1
                result.rechecked += _rechecked(verdict)
            else:
                if verdict.hit:
                    result.false_positive += 1
                assert result.misses is not None
                result.misses.append(f"{text!r} heard as {verdict.text!r}")
        for seq, speech in enumerate(neutral, start=1000):
            segment = _utterance_segment(speech, condition, seq, seq, stream=f"bench-{seq}")
            verdict, cpu = await _timed(engine, segment)
            result.cpu_seconds += cpu
            result.audio_seconds += segment.duration
            if verdict.hit:
                result.false_positive += 1
                result.rechecked += _rechecked(verdict)
                assert result.misses is not None
                result.misses.append(f"neutral {NEUTRAL[seq - 1000]!r} heard as {verdict.text!r}")
        results.append(result)
    return results


@dataclass
class FalseAlerts:
    source: str
    minutes: float
    alerts: int
    no_speech_segments: int
    segments: int
    cpu_seconds: float

    @property
    def per_hour(self) -> float:
        return self.alerts * 60.0 / self.minutes


async def false_alerts(engine: LocalEngine, minutes: float) -> list[FalseAlerts]:
    """Alerts raised on streams with no speech at all (30 s segments)."""
    results = []
    count = max(1, round(minutes * 2))
    for source in ("music", "noise", "silence"):
        result = FalseAlerts(source, count / 2, 0, 0, count, 0.0)
        for seq in range(count):
            if source == "silence":
                audio = silence(30.0)
            else:
                level = 10 ** (-20 / 20)
                bed = music(30.0, seq) if source == "music" else noise(30.0, seq)
                audio = (np.clip(bed * level, -1, 1) * 32767).astype(np.int16)
            verdict, cpu = await _timed(engine, _segment(audio, seq))
            result.alerts += int(verdict.hit)
            result.no_speech_segments += int(verdict.outcome == "no_speech")
            result.cpu_seconds += cpu
        results.append(result)
    return results


def voice_room(seconds: float, seed: int, voices: Sequence[str]) -> tuple[Pcm, float]:
    """A voice room: neutral turns and pauses, about 40% speech, over quiet room tone."""
    rng = np.random.default_rng(seed)
    parts: list[Pcm] = []
    speech_seconds = 0.0
    total = 0
    while total < seconds * SAMPLE_RATE:
        turn = speak(
            NEUTRAL[int(rng.integers(len(NEUTRAL)))], voices[int(rng.integers(len(voices)))]
        )
        pause = silence(float(rng.uniform(0.8, 2.2)) * len(turn) / SAMPLE_RATE)
        parts += [turn, pause]
        speech_seconds += len(turn) / SAMPLE_RATE
        total += len(turn) + len(pause)
    audio = np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]
    tone = noise(seconds, seed) * 10 ** (-60 / 20)
    mixed = np.clip(audio.astype(np.float64) / 32768 + tone, -1, 1)
    return (mixed * 32767).astype(np.int16), min(speech_seconds, seconds) / seconds


@dataclass
class RoomLoad:
    rooms: int
    minutes: float
    speech_share: float
    cpu_per_audio_second: float
    not_judged: int
    """Segments whose verdict is not a judgement (failed or skipped): must be 0."""

    @property
    def rooms_per_core(self) -> float:
        return 1.0 / self.cpu_per_audio_second


async def room_load(
    engine: LocalEngine, rooms: int, minutes: float, voices: Sequence[str]
) -> RoomLoad:
    """CPU per audio-second when ``rooms`` voice rooms hand in their 30 s segments together.

    Each 30 s, every room's segment arrives at once (as live rooms' segments do), so with
    several rooms the engine can join their speech into shared whisper windows.
    """
    audios = [voice_room(minutes * 60, 7 + n, voices) for n in range(rooms)]
    share = sum(s for _, s in audios) / rooms
    segment_samples = 30 * SAMPLE_RATE
    started = time.process_time()
    verdicts: list[asyncio.Task[Verdict]] = []
    for seq, first in enumerate(range(0, len(audios[0][0]), segment_samples)):
        async with asyncio.TaskGroup() as group:
            for n, (audio, _) in enumerate(audios):
                segment = _segment(audio[first : first + segment_samples], seq)
                verdicts.append(group.create_task(engine.moderate(segment), name=f"room-{n}.{seq}"))
    cpu = time.process_time() - started
    judged = {Outcome.MODERATED, Outcome.NO_SPEECH}
    not_judged = sum(task.result().outcome not in judged for task in verdicts)
    return RoomLoad(rooms, minutes, share, cpu / (rooms * minutes * 60), not_judged)


def report(
    results: list[Accuracy],
    alerts: list[FalseAlerts],
    loads: list[RoomLoad],
    keyword_speed: float,
    command: str,
    config: LocalEngineConfig,
) -> str:
    lines = [
        "## Local engine",
        "",
        f"Command: `{command}` "
        f"(measured {datetime.now(UTC):%Y-%m-%d}, whisper tiny.en int8, beam size "
        f"{config.beam_size}, 1 worker, 1 thread; second listen "
        + (
            f"on: recheck_word_probability {config.recheck_word_probability:g}, "
            f"recheck_context_seconds {config.recheck_context_seconds:g}, "
            f"recheck_confirm_probability {config.recheck_confirm_probability:g}; "
            if config.recheck
            else "off; "
        )
        + "2-core VM shared with other jobs, so CPU figures are pessimistic).",
        "",
        f"Utterances: {len(FLAGGED)} flagged sentences in two voices each and {len(NEUTRAL)} "
        "neutral sentences, voices rotating over hibari-tts (natural) and three espeak-ng "
        "voices (robotic), each in a "
        "segment with 1 s of margin. A flagged utterance counts as found when a keyword of "
        "its intended library is hit; precision counts every hit on a neutral utterance (or "
        'a wrong-library hit) as false. "by second listen" counts hits only the second '
        "listen found.",
        "",
        "| condition | recall | precision | by second listen | CPU s / audio s |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.condition} | {r.recall:.0%} ({r.true_positive}/{r.flagged}) | "
            f"{r.precision:.0%} | {r.rechecked} | {r.cpu_seconds / r.audio_seconds:.3f} |"
        )
    lines += [
        "",
        f"False alerts on streams without speech ({alerts[0].minutes:g} min each, 30 s "
        "segments, music and noise at -20 dBFS; per-hour figures are extrapolated):",
        "",
        "| stream | alerts | per stream-hour | segments judged no-speech | CPU s / audio s |",
        "|---|---|---|---|---|",
    ]
    for a in alerts:
        lines.append(
            f"| {a.source} | {a.alerts} | {a.per_hour:.1f} | {a.no_speech_segments}/{a.segments}"
            f" | {a.cpu_seconds / (a.minutes * 60):.4f} |"
        )
    lines += [
        "",
        f"Voice rooms (neutral turns and pauses over -60 dBFS room tone, 30 s segments, "
        f"{loads[0].minutes:g} min each; all rooms' segments arrive together every 30 s):",
        "",
        "| rooms at once | speech share | CPU s / audio s | voice rooms per core "
        "| segments not judged |",
        "|---|---|---|---|---|",
    ]
    for load in loads:
        lines.append(
            f"| {load.rooms} | {load.speech_share:.0%} | {load.cpu_per_audio_second:.4f} | "
            f"**{load.rooms_per_core:.1f}** | {load.not_judged} |"
        )
    lines += [
        "",
        "One room alone gets no shared windows (each segment is its own whisper pass); with "
        "several rooms queued, speech from several segments shares a 28 s window.",
        "",
        f"Keyword matching alone (default library): {keyword_speed:,.0f} transcript lines/s.",
        "",
        "Against the targets:",
        "",
        *_targets(results, alerts, loads),
        "",
        "Misses and false hits (what whisper heard):",
        "",
    ]
    for r in results:
        for miss in r.misses or []:
            lines.append(f"- {r.condition}: {miss}")
    return "\n".join(lines) + "\n"


def _targets(
    results: list[Accuracy], alerts: list[FalseAlerts], loads: list[RoomLoad]
) -> list[str]:
    by_condition = {r.condition: r for r in results}
    at_10db = [r.recall for c, r in by_condition.items() if c.startswith("10 dB")]
    worst_alerts = max(a.per_hour for a in alerts if a.source != "silence")
    best_rooms = max(load.rooms_per_core for load in loads)
    not_judged = sum(load.not_judged for load in loads)

    def line(name: str, measured: str, met: bool) -> str:
        return f"- {name}: {measured} — {'met' if met else 'NOT met'}"

    lines = []
    if "clean" in by_condition:
        clean = by_condition["clean"].recall
        lines.append(line("recall >= 90% clean", f"{clean:.0%}", clean >= 0.9))
    if at_10db:
        lines.append(
            line(
                "recall >= 75% at 10 dB",
                f"{min(at_10db):.0%} (worse of noise and music)",
                min(at_10db) >= 0.75,
            )
        )
    return [
        *lines,
        line(
            "<= 1 false alert per stream-hour on music/noise",
            f"{worst_alerts:.1f}",
            worst_alerts <= 1.0,
        ),
        line(
            ">= 25 voice rooms per core",
            f"{best_rooms:.1f} (rooms arriving together; segments not judged: {not_judged})",
            best_rooms >= 25 and not_judged == 0,
        ),
    ]


def keyword_lines_per_second(engine: LocalEngine) -> float:
    """Transcript lines matched per second against the loaded libraries."""
    lines = [*NEUTRAL, *(text for text, _ in FLAGGED)] * 200
    matcher = engine.libraries.matcher
    started = time.perf_counter()
    for line in lines:
        matcher.match(line)
    return len(lines) / (time.perf_counter() - started)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` in ``path`` under its heading, replacing an older run of it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Local engine\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--minutes", type=float, default=5.0, help="minutes of each no-speech stream"
    )
    parser.add_argument(
        "--rooms-minutes", type=float, default=2.0, help="minutes of each simulated voice room"
    )
    parser.add_argument("--beam-size", type=int, default=None, help="override beam_size")
    parser.add_argument(
        "--no-recheck", action="store_true", help="one plain whisper pass (recheck = false)"
    )
    parser.add_argument(
        "--recheck-word-probability",
        type=float,
        default=None,
        help="override recheck_word_probability (second listen)",
    )
    parser.add_argument(
        "--conditions",
        default=",".join(DEFAULT_CONDITIONS),
        help=f"comma-separated conditions to measure, of {list(CONDITIONS)} "
        "(default: all but telephone)",
    )
    parser.add_argument(
        "--semantic", action="store_true", help="semantic layer on (engine.semantic = true)"
    )
    parser.add_argument("--write", type=Path, help="write the section to this markdown file")
    args = parser.parse_args()
    config = LocalEngineConfig(workers=1, cpu_threads=1, backlog=1000)
    if args.beam_size is not None:
        config = config.model_copy(update={"beam_size": args.beam_size})
    if args.no_recheck:
        config = config.model_copy(update={"recheck": False})
    if args.semantic:
        config = config.model_copy(update={"semantic": True})
    if args.recheck_word_probability is not None:
        config = config.model_copy(
            update={"recheck_word_probability": args.recheck_word_probability}
        )
    conditions = [c for c in args.conditions.split(",") if c]
    if unknown := set(conditions) - set(CONDITIONS):
        parser.error(f"--conditions: unknown {sorted(unknown)}; known: {list(CONDITIONS)}")
    async with LocalEngine(config) as engine:
        results = await accuracy(engine, VOICES, conditions)
        alerts = await false_alerts(engine, args.minutes)
        loads = [await room_load(engine, n, args.rooms_minutes, VOICES) for n in (1, 8)]
        speed = keyword_lines_per_second(engine)
    command = (
        ".venv/bin/python -m bench.engine_eval "
        + (f"--beam-size {args.beam_size} " if args.beam_size is not None else "")
        + ("--no-recheck " if args.no_recheck else "")
        + ("--semantic " if args.semantic else "")
        + (
            f"--recheck-word-probability {args.recheck_word_probability:g} "
            if args.recheck_word_probability is not None
            else ""
        )
        + f"--minutes {args.minutes:g} "
        f"--rooms-minutes {args.rooms_minutes:g} --write docs/benchmarks.md"
    )
    section = report(results, alerts, loads, speed, command, config)
    print(section)
    if args.write:
        write_section(args.write, section)


if __name__ == "__main__":
    asyncio.run(main())
