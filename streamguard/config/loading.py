"""Reading a config file into a ``Config``, collecting every problem with its dotted path."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streamguard.config.model import Config
from streamguard.core.errors import ConfigError, ConfigProblem

__all__ = ["load_config", "parse_config"]


def load_config(path: Path) -> Config:
    """Read and validate a TOML config file; raise ``ConfigError`` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), f"cannot read: {exc.strerror}")]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), f"not valid TOML: {exc}")]) from exc
    return parse_config(data)


def parse_config(data: dict[str, Any]) -> Config:
    """Validate already-parsed config data."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(error) for error in exc.errors()]) from exc


def _problem(error: Any) -> ConfigProblem:
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("local", "ams") and path.endswith("engine"):
            continue  # the discriminator's branch name is not a key the user wrote
        else:
            path += f".{part}" if path else str(part)
    reason = error["msg"]
    if error["type"] == "extra_forbidden":
        reason = "unknown key"
    elif error["type"] == "missing":
        reason = "required key is missing"
    elif reason.startswith("Value error, "):
        reason = reason.removeprefix("Value error, ")
    return ConfigProblem(path or "(top level)", reason)
