"""What several subcommands share: reading the config and reporting its problems."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from streamguard.config import Config, load_config
from streamguard.core.errors import ConfigError, ConfigProblem, StreamGuardError
from streamguard.core.redact import redact

__all__ = ["EXIT_CONFIG", "config_or_report", "report_failure"]

EXIT_CONFIG = 78
"""``run``'s exit code when the config is unusable (sysexits' EX_CONFIG): the systemd unit
does not restart on it (``RestartPreventExitStatus``), as a restart cannot fix the file."""


def config_or_report(
    path: Path, *, also: Callable[[Config], list[ConfigProblem]] | None = None
) -> Config | None:
    """The config at ``path``, or None after printing every problem (path: key: reason).

    ``also`` finds more problems in a config the models accept (``check-config`` and ``run``
    pass the checks ``run`` makes at start-up).
    """
    try:
        config = load_config(path)
        problems = also(config) if also is not None else []
    except ConfigError as exc:
        problems = exc.problems
    if not problems:
        return config
    for problem in problems:
        print(redact(f"{path}: {problem}"), file=sys.stderr)
    print(f"{len(problems)} problem(s) found", file=sys.stderr)
    return None


def report_failure(exc: StreamGuardError | ExceptionGroup[Exception]) -> int:
    """Print a run's failure (raised inside task groups, so maybe grouped) and return 1, or
    ``EXIT_CONFIG`` when every error is a config error; anything that is not a
    ``StreamGuardError`` is a bug and is raised on."""
    if isinstance(exc, ExceptionGroup):
        ours, rest = exc.split(StreamGuardError)
        if rest is not None:
            raise exc
        errors = list(_leaves(ours)) if ours is not None else []
    else:
        errors = [exc]
    for error in errors:
        print(redact(f"streamguard: {error}"), file=sys.stderr)
    return EXIT_CONFIG if errors and all(isinstance(e, ConfigError) for e in errors) else 1


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found
