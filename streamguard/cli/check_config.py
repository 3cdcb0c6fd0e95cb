"""``streamguard check-config -c FILE``: print every problem of a config, exit 1 on any."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streamguard.config import load_config
from streamguard.errors import ConfigError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check-config", help="validate a config file")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.config}: OK ({len(config.streams)} stream(s), engine {config.engine.type})")
    return 0
