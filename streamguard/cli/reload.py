"""``streamguard reload -c FILE --pid PID``: reload a running daemon and wait for the result.

systemd's ``ExecReload``: the file is checked first (a broken one is reported and the daemon
is not even signalled), then the daemon gets SIGHUP and this waits until it wrote the result
of that reload (``app.reload.ReloadResults``). Exit 0 when the file was taken, 1 when the
daemon refused it or did not answer in time, 78 when the file does not load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from streamguard.app.reload import reload_result_path
from streamguard.cli.common import EXIT_CONFIG, config_or_report

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("reload", help="reload a running daemon and wait for it")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.add_argument("--pid", type=int, required=True, help="the daemon's process id")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config)
    if config is None:
        print("streamguard reload: not reloaded; the daemon keeps its config", file=sys.stderr)
        return EXIT_CONFIG
    path = reload_result_path(config.state_path())
    seen = _generation(_read(path), args.pid)
    try:
        os.kill(args.pid, signal.SIGHUP)
    except OSError as exc:
        print(f"streamguard reload: cannot signal {args.pid}: {exc.strerror}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        result = _read(path)
        if result is not None and _generation(result, args.pid) > seen:
            print(f"streamguard reload: {result.get('summary')}", file=sys.stderr)
            return 0 if result.get("ok") is True else 1
        time.sleep(0.1)
    print(f"streamguard reload: no result in {path} within {args.timeout:.0f} s", file=sys.stderr)
    return 1


def _read(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _generation(result: dict[str, Any] | None, pid: int) -> int:
    """The generation of ``result`` if the daemon ``pid`` wrote it, else 0."""
    if result is None or result.get("pid") != pid:
        return 0
    generation = result.get("generation")
    return generation if isinstance(generation, int) else 0
