"""Choose the semantic layer's settings on the TUNING examples only (cross-validation).

    .venv/bin/python -m bench.semantic_tune [--examples FILE ...] [--folds 5]
        [--harm best|summed|both] [--show L2 SCORE]

Every fitted example (``examples``, never ``held_out``) of the example libraries is
embedded once; in each of ``--folds`` folds (stratified by library, seed 13) the classifier
is fitted on the other folds and scores this one. For each weight decay and each candidate
``semantic_review_score`` the table gives recall on harmful examples (caught = the best
flag library's probability at or above the score, or with ``summed`` all flag libraries'
together, as ``engine.semantic_summed``) and false flags on benign examples, for the
semantic layer alone and with the shipped keyword libraries beside it. The held-out
sentences are not read.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from streamguard.engines.local.embedder import E5Embedder
from streamguard.engines.local.examples import ExampleKind, ExampleLibrary, ExampleSet
from streamguard.engines.local.keywords import LibrarySet
from streamguard.engines.local.semantic import Classifier

SCORES = (30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 82, 84, 86, 88, 90, 92, 94)
L2S = (1e-2, 3e-2, 1e-1)


def _folds(classes: Sequence[int], folds: int) -> list[int]:
    """A fold number per example, each library spread evenly (seeded)."""
    rng = random.Random(13)
    fold = [0] * len(classes)
    for label in sorted(set(classes)):
        members = [n for n, c in enumerate(classes) if c == label]
        rng.shuffle(members)
        for position, n in enumerate(members):
            fold[n] = position % folds
    return fold


def _show(
    libraries: Sequence[ExampleLibrary],
    texts: Sequence[str],
    classes: Sequence[int],
    semantic: npt.NDArray[np.bool_],
    keyword_hit: npt.NDArray[np.bool_],
) -> None:
    """Recall (or false flags) per library at one setting, and what went wrong."""
    for n, library in enumerate(libraries):
        members = [i for i, c in enumerate(classes) if c == n]
        hit = [bool(semantic[i] or keyword_hit[i]) for i in members]
        harmful = library.kind is ExampleKind.FLAG
        print(f"{library.id}: {sum(hit)}/{len(hit)} {'caught' if harmful else 'flagged'}")
        for i, flagged in zip(members, hit, strict=True):
            if flagged != harmful:
                print(f"    {'missed' if harmful else 'flagged'}: {texts[i]!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=Path, nargs="*", default=[])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--harm",
        choices=("best", "summed", "both"),
        default="both",
        help="score = the best flag library's probability, all flag libraries' together "
        "(engine.semantic_summed), or a table for each",
    )
    parser.add_argument(
        "--show",
        nargs=2,
        type=float,
        metavar=("L2", "SCORE"),
        help="at this weight decay and review score: recall per library, the benign examples "
        "flagged and the harmful ones missed",
    )
    args = parser.parse_args(argv)
    libraries = ExampleSet(args.examples).libraries
    texts = [t for lib in libraries for t in lib.examples]
    classes = [n for n, lib in enumerate(libraries) for _ in lib.examples]
    flags = [n for n, lib in enumerate(libraries) if lib.kind is ExampleKind.FLAG]
    vectors = E5Embedder().embed(texts)
    matcher = LibrarySet([]).matcher
    keyword_hit = np.array([bool(matcher.match(t)) for t in texts])
    for text, hit, c in zip(texts, keyword_hit, classes, strict=True):
        if hit and c not in flags:
            print(f"keyword hit on a benign example: {text!r}")
    harmful = np.array([c in flags for c in classes])
    fold = np.array(_folds(classes, args.folds))
    print(f"{len(texts)} tuning examples, {harmful.sum()} harmful; {args.folds}-fold CV\n")
    print(
        "| score | weight decay | review score | recall, semantic | recall, with keywords | "
        "false flags, semantic | false flags, with keywords |"
    )
    print("|---|---|---|---|---|---|---|")
    modes = ("best", "summed") if args.harm == "both" else (args.harm,)
    for mode, l2 in [
        (m, x) for m in modes for x in (L2S if args.show is None else (args.show[0],))
    ]:
        best = np.zeros(len(texts))
        for k in range(args.folds):
            train, test = fold != k, fold == k
            # Relabel so that every class present in training is 0..m-1.
            present = sorted(set(np.array(classes)[train]))
            index = {c: i for i, c in enumerate(present)}
            y = np.array([index[c] for c in np.array(classes)[train]], dtype=np.int64)
            model = Classifier.fit(vectors[train], y, l2=l2)
            probabilities = model.probabilities(vectors[test])
            columns = [index[c] for c in flags if c in index]
            chosen = probabilities[:, columns]
            best[test] = (chosen.sum(axis=1) if mode == "summed" else chosen.max(axis=1)) * 100
        if args.show is not None:
            print(f"\n{mode} score, weight decay {l2:g}, review score {args.show[1]:g}:")
            _show(libraries, texts, classes, best >= args.show[1], keyword_hit)
            continue
        for score in SCORES:
            semantic = best >= score
            both = semantic | keyword_hit
            print(
                f"| {mode} | {l2:g} | {score} | {semantic[harmful].mean():.0%} | "
                f"{both[harmful].mean():.0%} | {semantic[~harmful].mean():.1%} "
                f"({semantic[~harmful].sum()}/{(~harmful).sum()}) | "
                f"{both[~harmful].mean():.1%} ({both[~harmful].sum()}/{(~harmful).sum()}) |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
