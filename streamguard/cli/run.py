"""``streamguard run -c FILE``: the daemon."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from streamguard.app.daemon import Daemon
from streamguard.cli.check_config import runtime_problems
from streamguard.cli.common import EXIT_CONFIG, config_or_report, report_failure
from streamguard.core.errors import StreamGuardError
from streamguard.core.logs import configure_logging

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the daemon")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    # The checks check-config makes; the engine loads the speech model itself.
    config = config_or_report(args.config, also=runtime_problems)
    if config is None:
        return EXIT_CONFIG
    try:
        return asyncio.run(Daemon(args.config, config).run())
    except (StreamGuardError, ExceptionGroup) as exc:
        return report_failure(exc)
