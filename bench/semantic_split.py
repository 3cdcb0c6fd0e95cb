"""Split a written evaluation set into a tuning half and a held-out half (seeded), once.

    .venv/bin/python -m bench.semantic_split POOL.toml OUT.toml [--seed 20261128]

``POOL.toml`` has one ``[sentences]`` table, a list of sentences per category (an example
library id, or a key starting with ``benign`` for sentences that must pass). Each category
is shuffled with one ``random.Random(seed)`` in the pool's order; the first half (rounded
down) goes to ``[tuning]``, the rest to ``[held_out]``, each in writing order. ``OUT.toml``
is what ``bench/semantic_eval.py --held-out`` reads (``[held_out]``) and what
``bench/semantic_tune.py --tuning`` may add to the fitted examples (``[tuning]``).
``bench/data/third-held-out.toml`` was made this way and committed before any tuning.
"""

from __future__ import annotations

import argparse
import json
import random
import tomllib
from collections.abc import Sequence
from pathlib import Path

HEADER = """\
# The third evaluation set for the semantic layer and the keyword libraries (issue 13),
# written on 2026-11-28 by the `semeval` session BEFORE any example, keyword or threshold
# was changed in that round, in varied registers (chat shorthand, lower case without
# punctuation, formal and news prose), none of it a paraphrase of the shipped examples or
# of the earlier held-out sets. Nine harmful categories (the eight example libraries of
# en-examples.toml and extremism: praise of terrorists and mass shooters, recruiting,
# calls to political violence) and six kinds of benign text (gaming talk, idioms, news
# quoting violence, medical and prevention talk, near-misses, ordinary chat).
#
# Split by bench/semantic_split.py, seed {seed}: each category shuffled, the first half
# (rounded down) to [tuning], the rest to [held_out]. [tuning] may be fitted and used to
# choose settings; [held_out] must NEVER be (bench/semantic_eval.py --held-out this file).
"""


def split(pool: dict[str, list[str]], seed: int) -> tuple[dict[str, list[str]], ...]:
    """(tuning, held_out), each a list of sentences per category, in writing order."""
    rng = random.Random(seed)
    tuning: dict[str, list[str]] = {}
    held_out: dict[str, list[str]] = {}
    for category, texts in pool.items():
        order = list(range(len(texts)))
        rng.shuffle(order)
        chosen = set(order[: len(texts) // 2])
        tuning[category] = [t for n, t in enumerate(texts) if n in chosen]
        held_out[category] = [t for n, t in enumerate(texts) if n not in chosen]
    return tuning, held_out


def _table(name: str, sets: dict[str, list[str]]) -> str:
    lines = [f"[{name}]"]
    for category, texts in sets.items():
        lines.append(f"{category} = [")
        lines += [f"    {json.dumps(t, ensure_ascii=False)}," for t in texts]
        lines.append("]")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pool", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args(argv)
    with args.pool.open("rb") as file:
        pool = tomllib.load(file)["sentences"]
    tuning, held_out = split(pool, args.seed)
    text = HEADER.format(seed=args.seed) + "\n" + _table("tuning", tuning) + "\n"
    args.out.write_text(text + _table("held_out", held_out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
