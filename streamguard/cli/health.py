"""``streamguard health -c FILE``: exit 0 when the daemon of that config answers ``/healthz``.

For container health checks and scripts: the address comes from the config (``api.host``,
``api.port``), so a changed port needs no second place to edit. A wildcard listen address
(``0.0.0.0``, ``::``) is checked on loopback.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streamguard.cli.common import EXIT_CONFIG, config_or_report

__all__ = ["register"]

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("health", help="exit 0 when the configured daemon is healthy")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds to wait")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config)
    if config is None:
        return EXIT_CONFIG
    if config.api.port == 0:
        print("streamguard health: api.port = 0 (any free port) cannot be checked", file=sys.stderr)
        return 1
    host = _WILDCARDS.get(config.api.host, config.api.host)
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{config.api.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            healthy = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"streamguard health: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1
