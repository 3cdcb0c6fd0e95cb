"""Reading a config file into a ``Config``, collecting every problem with its dotted path.

Every way reading or parsing can fail is a ``ConfigError`` with a message a person can act
on, never another exception: a missing file, a directory or a FIFO named as the file, no
permission, a file over ``MAX_CONFIG_BYTES``, bytes that are not UTF-8, TOML that does not
parse, values nested deeper than ``MAX_NESTING`` (TOML's parser recurses, and a 5,000-deep
array would exhaust the stack), and values the models refuse. ``SIGHUP`` relies on it: a
reload that raises anything else would take the daemon down instead of keeping the old config.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streamguard.config.model import Config
from streamguard.core.errors import ConfigError, ConfigProblem

__all__ = ["MAX_CONFIG_BYTES", "MAX_NESTING", "load_config", "parse_config"]

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""A config larger than this is refused (thousands of streams fit in a few hundred KiB)."""

MAX_NESTING = 32
"""Deepest nesting of tables and arrays a config may have (the models need about 5)."""


def load_config(path: Path) -> Config:
    """Read and validate a TOML config file; raise ``ConfigError`` listing every problem."""
    text = _read_text(path)
    where = str(path)
    try:
        data = tomllib.loads(text)
    except RecursionError as exc:
        raise _error(where, f"nested more than {MAX_NESTING} levels deep") from exc
    except ValueError as exc:  # tomllib.TOMLDecodeError, and the odd bare ValueError
        raise _error(where, f"not valid TOML: {exc}") from exc
    if _depth(data) > MAX_NESTING:
        raise _error(where, f"nested more than {MAX_NESTING} levels deep")
    return parse_config(data)


def parse_config(data: dict[str, Any]) -> Config:
    """Validate already-parsed config data."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(error, data) for error in exc.errors()]) from exc
    except RecursionError as exc:
        raise _error("(top level)", f"nested more than {MAX_NESTING} levels deep") from exc


def _read_text(path: Path) -> str:
    where = str(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise _error(where, "is a directory, not a config file")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO or device would block the reader (and a reload) forever.
            raise _error(where, "is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise _error(where, f"is {info.st_size} bytes; at most {MAX_CONFIG_BYTES} allowed")
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise _error(where, f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise _error(where, f"is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        raise _error(
            where, f"not UTF-8: byte 0x{byte:02x} at line {line}, column {column} ({exc.reason})"
        ) from exc


def _error(where: str, reason: str) -> ConfigError:
    return ConfigError([ConfigProblem(where, reason)])


def _depth(data: Any) -> int:
    """How deeply ``data`` nests (a scalar is 0), without recursing."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break
        stack.extend((child, depth + 1) for child in _children(value))
    return deepest


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.values()
    elif isinstance(value, list):
        yield from value


def _problem(error: Any, data: dict[str, Any]) -> ConfigProblem:
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
    stream_id = _stream_id(error["loc"], data)
    if stream_id is not None:
        reason += f" (stream {stream_id!r})"
    return ConfigProblem(path or "(top level)", reason)


def _stream_id(loc: tuple[Any, ...], data: dict[str, Any]) -> str | None:
    """The id of the stream a problem is in, when the file gives one, so each is named."""
    if len(loc) < 3 or loc[0] != "streams" or not isinstance(loc[1], int) or loc[2] == "id":
        return None
    streams = data.get("streams")
    if not isinstance(streams, list) or loc[1] >= len(streams):
        return None
    entry = streams[loc[1]]
    stream_id = entry.get("id") if isinstance(entry, dict) else None
    return stream_id if isinstance(stream_id, str) and len(stream_id) <= 40 else None
