"""``streamguard check-config -c FILE``: print every problem of a config, exit 1 on any."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamguard.cli.common import config_or_report

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check-config", help="validate a config file")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config)
    if config is None:
        return 1
    print(f"{args.config}: OK ({len(config.streams)} stream(s), engine {config.engine.type})")
    return 0
