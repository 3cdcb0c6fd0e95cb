"""Answers and query parsing shared by the API's handler modules.

Every JSON answer passes ``core.redact``: a password in a stream URL never leaves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from streamguard.core.redact import redact_json

__all__ = ["BadQuery", "choice", "json_reply", "problem", "query_int", "query_time"]


class BadQuery(ValueError):
    """A query parameter the API refuses with ``400 bad_query``."""


def json_reply(body: Any, status: int = 200) -> web.Response:
    """A JSON answer; every string in it redacted."""
    return web.json_response(redact_json(body), status=status)


def problem(status: int, code: str, message: str) -> web.Response:
    """The API's error body: ``{"error": {"code", "message"}}``."""
    return json_reply({"error": {"code": code, "message": message}}, status=status)


def choice(value: str | None, allowed: Iterable[str], name: str) -> str | None:
    """``value`` if it is one of ``allowed`` (or None)."""
    options = list(allowed)
    if value is not None and value not in options:
        raise BadQuery(f"{name} must be one of {', '.join(options)}")
    return value


def query_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with a zone, in UTC (or None)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadQuery(f"{name} must be an ISO 8601 time, got {value!r}") from exc
    if parsed.tzinfo is None:
        raise BadQuery(f"{name} must carry a time zone (e.g. Z or +00:00)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise BadQuery(f"{name} is out of range: {value!r}") from exc


def query_int(value: str, name: str, low: int, high: int) -> int:
    """A decimal integer from ``low`` to ``high``."""
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadQuery(f"{name} must be an integer from {low} to {high}")
    return int(value)
