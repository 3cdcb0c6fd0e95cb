"""Held-out sentences spoken: recall and false flags per category and acoustic condition.

    .venv/bin/python -m bench.semantic_speech [--held-out FILE ...] [--conditions LIST]
        [--every N] [--minutes 1] [--rooms-minutes 1] [--no-semantic]
        [--model tiny.en|base|PATH] [--model-language LANG] [--multilingual-model base|PATH]

The ``[held_out]`` sentences of each file (default: ``bench/data/fresh-held-out.toml`` and
``bench/data/third-held-out.toml``; never fitted, never used to choose anything) are spoken
by espeak-ng voices that nothing was tuned with (``HELD_OUT_VOICES``; the engine's
evaluation and the second listen's thresholds used hibari, en-us, en-gb+m3 and en-us+f2),
one voice per sentence in turn, each in its own segment and stream (no context from the
sentence before), and judged by the local engine (whisper tiny.en, second listen on) with
the semantic layer on. Each verdict gives both figures: *keywords only* is whether a keyword
library hit what whisper heard (what the engine answers with ``semantic = false``: the
recognition is the same, the semantic layer only adds), *keywords + semantic* whether the
suggestion is not Pass. A harmful sentence is caught when flagged; a benign one flagged is a
false flag. Conditions are ``bench.engine_eval``'s: clean, 10 dB noise, 10 dB music, and
"telephone" (300-3400 Hz, 8 kHz, 8-bit μ-law).

Then, as ``bench.engine_eval`` measures them, with the same engine: false alerts on music
and noise streams without speech, and voice rooms per core (CPU per audio second of 1 room
alone and of 8 rooms arriving together). ``--every N`` keeps every N-th sentence of each
category (a subset for a loaded machine); ``--no-semantic`` runs the engine with the layer
off (for a same-run A/B of the cost).

``--model base`` recognises with whisper base (multilingual, from the ``whisper-base``
extra's packages, assembled into ``--model-dir`` and checked against its SHA-256) instead of
tiny.en; ``--model-language en`` makes it transcribe in English without detecting the
language; ``--multilingual-model base`` keeps tiny.en and hears again with whisper base what
tiny.en could not follow (``engine.multilingual_model``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tomllib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.engine_eval import CONDITIONS, VOICES, _utterance_segment, false_alerts, room_load
from streamguard.config.engine import LocalEngineConfig
from streamguard.core.verdict import Suggestion
from streamguard.demo.samples import speak
from streamguard.engines.local import LocalEngine
from streamguard.engines.local.models import WHISPER_BASE_SHA256, assemble_whisper_base

HELD_OUT_VOICES = (
    "espeak:en-gb-scotland+m7",
    "espeak:en-029+f4",
    "espeak:en-us-nyc+m5",
    "espeak:en-gb-x-rp+f1",
)
"""espeak-ng voices and variants that no threshold or library was tuned with."""
SETS = (Path("bench/data/fresh-held-out.toml"), Path("bench/data/third-held-out.toml"))
SPEECH_CONDITIONS = ("clean", "10 dB noise", "10 dB music", "telephone")


@dataclass
class Cell:
    """One category under one condition: how many sentences, and how many each way flagged."""

    total: int = 0
    keywords: int = 0
    semantic: int = 0
    wrong: list[str] = field(default_factory=list)
    """Harmful sentences missed (or benign ones flagged) with the semantic layer, as heard."""


def held_out(path: Path, every: int) -> dict[str, list[str]]:
    with path.open("rb") as file:
        document = tomllib.load(file)["held_out"]
    return {category: list(texts)[::every] for category, texts in document.items()}


async def speech_accuracy(
    engine: LocalEngine, sets: dict[str, dict[str, list[str]]], conditions: Sequence[str]
) -> tuple[dict[tuple[str, str, str], Cell], dict[str, float]]:
    """Cells per (set, category, condition), and CPU seconds per audio second per condition."""
    cells: dict[tuple[str, str, str], Cell] = defaultdict(Cell)
    cpu: dict[str, float] = defaultdict(float)
    audio: dict[str, float] = defaultdict(float)
    number = 0
    for name, categories in sets.items():
        for category, texts in categories.items():
            harmful = not category.startswith("benign")
            for text in texts:
                speech = speak(text, HELD_OUT_VOICES[number % len(HELD_OUT_VOICES)])
                for condition in conditions:
                    segment = _utterance_segment(
                        speech, condition, number, 0, stream=f"held-{number}-{condition}"
                    )
                    started = time.process_time()
                    verdict = await engine.moderate(segment)
                    cpu[condition] += time.process_time() - started
                    audio[condition] += segment.duration
                    cell = cells[(name, category, condition)]
                    cell.total += 1
                    cell.keywords += bool(verdict.keywords)
                    flagged = verdict.suggestion is not Suggestion.PASS
                    cell.semantic += flagged
                    if flagged != harmful:
                        cell.wrong.append(f"{text!r} heard as {verdict.text!r}")
                number += 1
    return cells, {c: cpu[c] / audio[c] for c in cpu}


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}% ({part}/{whole})" if whole else "-"


def table(cells: dict[tuple[str, str, str], Cell], name: str, conditions: Sequence[str]) -> str:
    """Markdown: a row per category, keywords only / keywords + semantic per condition."""
    categories = list(dict.fromkeys(cat for s, cat, _ in cells if s == name))
    head = " | ".join(f"{c}: keywords / + semantic" for c in conditions)
    lines = [f"| {name} | {head} |", "|---|" + "---|" * len(conditions)]

    def row(label: str, chosen: list[str]) -> str:
        parts = []
        for condition in conditions:
            group = [cells[(name, c, condition)] for c in chosen]
            total = sum(g.total for g in group)
            keywords = _percent(sum(g.keywords for g in group), total)
            parts.append(f"{keywords} / {_percent(sum(g.semantic for g in group), total)}")
        return f"| {label} | " + " | ".join(parts) + " |"

    for category in categories:
        what = "false flags" if category.startswith("benign") else "caught"
        lines.append(row(f"{category} ({what})", [category]))
    harmful = [c for c in categories if not c.startswith("benign")]
    lines.append(row("**all harmful: caught**", harmful))
    lines.append(row("**all benign: false flags**", [c for c in categories if c not in harmful]))
    return "\n".join(lines)


def _model(name: str | None, directory: Path) -> tuple[str | None, str | None]:
    """The model and SHA-256 for ``name``: whisper base assembled, or as given."""
    if name == "base":
        return str(assemble_whisper_base(directory)), WHISPER_BASE_SHA256
    return name, None


def engine_config(args: argparse.Namespace) -> LocalEngineConfig:
    """The engine measured: one worker on one thread, recogniser as the options say."""
    model, model_sha256 = _model(args.model, args.model_dir)
    multilingual, multilingual_sha256 = _model(args.multilingual_model, args.model_dir)
    return LocalEngineConfig(
        workers=1,
        cpu_threads=1,
        backlog=1000,
        semantic=not args.no_semantic,
        model=model or "tiny.en",
        model_sha256=model_sha256,
        model_language=args.model_language,
        multilingual_model=multilingual,
        multilingual_model_sha256=multilingual_sha256,
    )


async def run(args: argparse.Namespace) -> None:
    config = engine_config(args)
    sets = {path.stem: held_out(path, args.every) for path in args.held_out}
    conditions = [c for c in args.conditions.split(",") if c]
    async with LocalEngine(config) as engine:
        cells, cpu = await speech_accuracy(engine, sets, conditions)
        alerts = await false_alerts(engine, args.minutes)
        loads = [await room_load(engine, n, args.rooms_minutes, VOICES) for n in (1, 8)]
    print(
        f"Held-out speech, {datetime.now(UTC):%Y-%m-%d}, semantic {config.semantic}, "
        f"model {args.model} (language {config.model_language or 'as the model does'}), "
        f"multilingual model {args.multilingual_model}, "
        f"voices {', '.join(HELD_OUT_VOICES)}, every {args.every}\n"
    )
    for name in sets:
        print(table(cells, name, conditions) + "\n")
    print(
        "CPU s per audio s, held-out utterances: "
        + json.dumps({c: round(v, 3) for c, v in cpu.items()})
    )
    for a in alerts:
        print(
            f"- {a.source}: {a.alerts} alerts in {a.minutes:g} min ({a.per_hour:.1f} per "
            f"stream-hour), {a.no_speech_segments}/{a.segments} segments no-speech"
        )
    for load in loads:
        print(
            f"- {load.rooms} room(s) at once: {load.cpu_per_audio_second:.4f} CPU s per "
            f"audio s, {load.rooms_per_core:.1f} voice rooms per core, "
            f"{load.not_judged} segments not judged"
        )
    print("\nWrong with the semantic layer (misses and false flags, as heard):")
    for (name, category, condition), cell in cells.items():
        for wrong in cell.wrong:
            print(f"- {name} / {category} / {condition}: {wrong}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--held-out", type=Path, nargs="*", default=list(SETS))
    parser.add_argument("--conditions", default=",".join(SPEECH_CONDITIONS))
    parser.add_argument("--every", type=int, default=1, help="keep every N-th sentence")
    parser.add_argument("--minutes", type=float, default=1.0, help="each no-speech stream")
    parser.add_argument("--rooms-minutes", type=float, default=1.0, help="each voice room")
    parser.add_argument("--no-semantic", action="store_true", help="semantic layer off")
    parser.add_argument("--model", default="tiny.en", help="tiny.en, base, or a model path")
    parser.add_argument(
        "--model-language", default=None, help="engine.model_language (e.g. en: no detection)"
    )
    parser.add_argument(
        "--multilingual-model", default=None, help="engine.multilingual_model: base or a path"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("~/.cache/streamguard/whisper-base"),
        help="where whisper base is assembled",
    )
    args = parser.parse_args(argv)
    if unknown := set(args.conditions.split(",")) - set(CONDITIONS):
        parser.error(f"--conditions: unknown {sorted(unknown)}; known: {list(CONDITIONS)}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
