"""``streamguard run -c FILE``: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from streamguard.config import load_config
from streamguard.daemon.daemon import Daemon
from streamguard.errors import ConfigError, StreamGuardError
from streamguard.logs import configure_logging

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the daemon")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(Daemon(args.config, config).run())
    except StreamGuardError as exc:
        print(f"streamguard: {exc}", file=sys.stderr)
        return 1
