"""Semantic layer evaluation on text: recall and false flags per category, CPU per text.

    .venv/bin/python -m bench.semantic_eval [--examples FILE ...] [--held-out FILE] [--json]
        [--review-score N] [--summed yes|no]

The evaluation set is the ``held_out`` sentences of the example libraries (shipped:
``streamguard/engines/local/libraries/en-examples.toml``), which the classifier never
sees: they were split off with ``random.Random(13)`` before any threshold was chosen.
Each is judged alone, as ``moderate-text`` judges a chat line, twice: keyword libraries
only (``semantic = false``) and keywords plus the semantic layer (``semantic = true``, the
other settings at their defaults). A harmful
sentence is *caught* when the suggestion is not Pass, *labelled* when it is also flagged with
its library's label; a benign sentence that is not Pass is a *false flag*.

``--held-out FILE`` judges another held-out set instead (TOML: ``[held_out]`` with one
list of sentences per example library id, and keys starting with ``benign`` for sentences
that must pass; a harmful key no loaded library has counts as harmful, label "?"):
``bench/data/fresh-held-out.toml`` is a second set, written before the second round of
tuning; ``bench/data/third-held-out.toml`` a third, split by ``bench/semantic_split.py``
before the third round (its ``[tuning]`` half is not read here).

CPU is ``time.process_time()`` of this process with the embedder on one thread: "per core"
figures are per fully used core. It is measured the first time each text is judged (a
batch per category; texts a keyword decides are not embedded) and again one at a time
(their vectors kept, as for repeated chat lines). Text only: speech conditions (clean,
noise, telephone) are not measured here.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.verdict import Suggestion
from streamguard.engines.local.examples import ExampleKind, ExampleSet
from streamguard.engines.local.judge import Judgement
from streamguard.engines.local.moderator import TextModerator


@dataclass
class Tally:
    """One category's held-out sentences and what became of them."""

    category: str
    harmful: bool
    total: int = 0
    flagged: int = 0
    labelled: int = 0
    missed: list[str] = field(default_factory=list)
    """Harmful sentences passed, or benign ones flagged."""

    def add(self, text: str, label: str, judgement: Judgement) -> None:
        self.total += 1
        hit = judgement.suggestion is not Suggestion.PASS
        self.flagged += hit
        self.labelled += hit and judgement.label == label
        if hit != self.harmful:
            self.missed.append(text)


def held_out_sets(examples: ExampleSet, path: Path | None) -> list[tuple[str, str, list[str]]]:
    """(category, label, sentences) per held-out category; label "" for benign ones."""
    if path is None:
        return [
            (lib.id, lib.label if lib.kind is ExampleKind.FLAG else "", list(lib.held_out))
            for lib in examples.libraries
            if lib.held_out
        ]
    with path.open("rb") as file:
        document = tomllib.load(file)["held_out"]
    labels = {lib.id: lib.label for lib in examples.libraries if lib.kind is ExampleKind.FLAG}
    return [
        (name, "" if name.startswith("benign") else labels.get(name, "?"), list(texts))
        for name, texts in document.items()
    ]


def _evaluate(moderator: TextModerator, sets: Sequence[tuple[str, str, list[str]]]) -> list[Tally]:
    tallies = []
    for category, label, texts in sets:
        tally = Tally(category, bool(label))
        for text, judgement in zip(texts, moderator.judge_many(texts), strict=True):
            tally.add(text, label, judgement)
        tallies.append(tally)
    return tallies


def _cpu(moderator: TextModerator, sets: Sequence[tuple[str, str, list[str]]]) -> dict[str, Any]:
    """CPU per text the first time each is judged (a batch per category), then per text
    judged again one at a time (kept vectors: chat repeats itself), and what the semantic
    layer did with the texts."""
    texts = [t for _, _, some in sets for t in some]
    moderator.judge_many(["warm up the model once, please"])
    moderator.counts.clear()
    started = time.process_time()
    for _, _, some in sets:
        moderator.judge_many(some)
    first = (time.process_time() - started) / len(texts)
    started = time.process_time()
    for text in texts:
        moderator.judge_many([text])
    again = (time.process_time() - started) / len(texts)
    return {
        "cpu_ms_per_new_text": round(first * 1000, 2),
        "new_texts_per_core_second": round(1 / first, 1),
        "cpu_ms_per_repeated_text": round(again * 1000, 2),
        "repeated_texts_per_core_second": round(1 / again, 1),
        "texts by what the semantic layer did (both passes)": dict(moderator.counts),
    }


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}% ({part}/{whole})" if whole else "-"


def _table(runs: dict[str, list[Tally]]) -> list[str]:
    names = list(runs)
    lines = [
        "| category | held out | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    first = runs[names[0]]
    for index, tally in enumerate(first):
        what = "caught" if tally.harmful else "false flags"
        cells = [_percent(runs[n][index].flagged, runs[n][index].total) for n in names]
        lines.append(f"| {tally.category} ({what}) | {tally.total} | " + " | ".join(cells) + " |")
    for harmful, what in ((True, "all harmful: caught"), (False, "all benign: false flags")):
        cells = []
        for name in names:
            chosen = [t for t in runs[name] if t.harmful is harmful]
            flagged = sum(t.flagged for t in chosen)
            cells.append(_percent(flagged, sum(t.total for t in chosen)))
        lines.append(f"| **{what}** | | " + " | ".join(cells) + " |")
    cells = []
    for name in names:
        harmful_tallies = [t for t in runs[name] if t.harmful]
        labelled = sum(t.labelled for t in harmful_tallies)
        cells.append(_percent(labelled, sum(t.total for t in harmful_tallies)))
    lines.append("| **all harmful: caught with the right label** | | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=Path, nargs="*", default=[])
    parser.add_argument("--held-out", type=Path, help="another held-out set (TOML)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument(
        "--review-score", type=int, help="engine.semantic_review_score (default: the config's)"
    )
    parser.add_argument(
        "--summed",
        choices=("yes", "no"),
        help="engine.semantic_summed: score by all flag libraries together (default: config's)",
    )
    args = parser.parse_args(argv)
    runs: dict[str, list[Tally]] = {}
    report: dict[str, Any] = {"date": datetime.now(UTC).date().isoformat()}
    for name, semantic in (("keywords only", False), ("keywords + semantic", True)):
        config = LocalEngineConfig(semantic=semantic, example_libraries=args.examples)
        if args.review_score is not None:
            config = config.model_copy(update={"semantic_review_score": args.review_score})
        if args.summed is not None:
            config = config.model_copy(update={"semantic_summed": args.summed == "yes"})
        moderator = TextModerator(config)
        started = time.process_time()
        moderator.load()
        report[f"{name}: start cpu s"] = round(time.process_time() - started, 2)
        examples = moderator.examples or ExampleSet(args.examples)
        sets = held_out_sets(examples, args.held_out)
        report[f"{name}: cpu"] = _cpu(moderator, sets)
        runs[name] = _evaluate(moderator, sets)
    report["missed with semantic"] = {t.category: t.missed for t in runs["keywords + semantic"]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Held-out text, {report['date']}, {platform.processor() or platform.machine()}\n")
    print("\n".join(_table(runs)))
    print()
    for key, value in report.items():
        if key != "date":
            print(f"- {key}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
