"""``streamguard moderate-text [TEXT ...]``: judge chat texts, one JSON line per text.

Texts come as arguments, or one per line on stdin (blank lines are skipped). Each answer
says ``suggestion`` (Pass/Review/Block), ``label``, ``sub_label``, ``score``, which
``signals`` fired, the ``keywords`` and the ``semantic`` finding with its nearest examples,
in the order the texts came. The local engine's libraries judge them (its ``[engine]``
section when the config has one, else the defaults); ``--profile`` drops its ignored words
and switched-off labels and, with the semantic layer on, adds its own example libraries
(``example_libraries``, ``replace_default_examples``), fitted before the first text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streamguard.cli.common import config_or_report
from streamguard.config import Config
from streamguard.config.engine import LocalEngineConfig
from streamguard.core.errors import ConfigError
from streamguard.engines.local.moderator import TextModerator

__all__ = ["register"]

BATCH = 64
"""Texts embedded together (stdin may be long)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "moderate-text", help="judge texts (arguments, or one per line on stdin), JSON lines out"
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts; none = read stdin")
    parser.add_argument("-c", "--config", type=Path, help="config file (default: built-ins)")
    parser.add_argument("--profile", default="default", help="policy profile (from the config)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config) if args.config else Config()
    if config is None:
        return 2
    profile = config.profiles.get(args.profile)
    if profile is None:
        known = ", ".join(sorted(config.profiles))
        print(
            f"streamguard moderate-text: --profile {args.profile!r} is not one of {known}",
            file=sys.stderr,
        )
        return 2
    engine = config.engine if isinstance(config.engine, LocalEngineConfig) else LocalEngineConfig()
    try:
        moderator = TextModerator(engine)
        moderator.load({args.profile: profile})
    except ConfigError as exc:  # LibraryError too: the file, library and example
        for problem in exc.problems:
            print(f"streamguard moderate-text: {problem}", file=sys.stderr)
        return 2
    texts: Iterator[str] = iter(args.texts) if args.texts else _lines(sys.stdin)
    for batch in _batches(texts):
        for judgement in moderator.judge_many(batch, profile):
            print(json.dumps({"text": judgement.text, **judgement.to_json()}), flush=True)
    return 0


def _lines(stream: Any) -> Iterator[str]:
    for line in stream:
        text = line.rstrip("\r\n")
        if text.strip():
            yield text


def _batches(texts: Iterator[str]) -> Iterator[Sequence[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
