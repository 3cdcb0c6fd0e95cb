"""What the batch moderation routes share (``POST /v1/moderate/text`` and ``/image``, in the
manner of Tencent Chat's batch moderation, ``shared/spec/batch-moderation.md``): the request
shape ``{"items": [{"id": …, …}], "profile": "…"}``, its whole-request refusals and their
Tencent-style codes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from streamguard.config.policy import ProfileConfig

__all__ = [
    "DUPLICATE_ID",
    "INVALID_REQUEST",
    "MAX_ITEMS",
    "TIMED_OUT",
    "TOO_MANY_ITEMS",
    "Refused",
    "invalid",
    "item_id",
    "parse_batch",
]

MAX_ITEMS = 10
INVALID_REQUEST = 60003
TIMED_OUT = 93006
DUPLICATE_ID = 93007
TOO_MANY_ITEMS = 93008

Item = TypeVar("Item")


class Refused(Exception):
    """The request as a whole is refused: HTTP status, Tencent-style code, message."""

    def __init__(self, status: int, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.name = status, code, name

    def response(self) -> web.Response:
        body = {"error": {"code": self.name, "error_code": self.code, "message": str(self)}}
        return web.json_response(body, status=self.status)


def invalid(message: str) -> Refused:
    """A malformed request (60003)."""
    return Refused(400, INVALID_REQUEST, "invalid_request", message)


def parse_batch(
    body: Any,
    profiles: Mapping[str, ProfileConfig],
    item: Callable[[Any, int], tuple[Any, Item]],
) -> tuple[list[tuple[Any, Item]], ProfileConfig | None]:
    """(id, parsed item) of every item, by ``item(raw, index)``, and the profile asked for
    (None: none named); :class:`Refused` when the request is malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise invalid("body needs an 'items' array")
    unknown = sorted(set(body) - {"items", "profile"})
    if unknown:
        raise invalid(f"unknown keys: {unknown}")
    items = body["items"]
    if not items:
        raise invalid("'items' is empty")
    if len(items) > MAX_ITEMS:
        message = f"{len(items)} items; at most {MAX_ITEMS} per request"
        raise Refused(400, TOO_MANY_ITEMS, "too_many_items", message)
    parsed = [item(raw, index) for index, raw in enumerate(items)]
    ids = [parsed_id for parsed_id, _ in parsed]
    duplicates = sorted({str(i) for i in ids if ids.count(i) > 1})
    if duplicates:
        message = f"ids used more than once: {', '.join(duplicates)}"
        raise Refused(400, DUPLICATE_ID, "duplicate_id", message)
    name = body.get("profile")
    if name is None:
        return parsed, None
    if not isinstance(name, str) or name not in profiles:
        message = f"profile {name!r} is not one of {', '.join(sorted(profiles))}"
        raise Refused(400, INVALID_REQUEST, "unknown_profile", message)
    return parsed, profiles[name]


def item_id(item: dict[str, Any], index: int) -> Any:
    """The item's ``id``: a string or an integer."""
    found = item["id"]
    if isinstance(found, bool) or not isinstance(found, str | int):
        raise invalid(f"items[{index}].id must be a string or an integer")
    return found
