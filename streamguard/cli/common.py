"""What several subcommands share: reading the config and reporting its problems."""

from __future__ import annotations

import sys
from pathlib import Path

from streamguard.config import Config, load_config
from streamguard.errors import ConfigError

__all__ = ["config_or_report"]


def config_or_report(path: Path) -> Config | None:
    """The config at ``path``, or None after printing every problem (path: key: reason)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return None
