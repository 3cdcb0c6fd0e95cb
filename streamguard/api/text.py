"""``POST /v1/moderate/text``: judge 1-10 chat texts, in the manner of Tencent Chat's batch
moderation (``shared/spec/batch-moderation.md``, part A).

Request: ``{"items": [{"id": ..., "text": "..."}], "profile": "default"}`` (``profile``
optional; ``id`` a string or an integer, unique in the request). Answer (200):
``{"results": [...]}``, one per item in order, each with its ``id``, its own
``request_id``, ``error_code`` (0 = judged) and ``error_info``, and when judged
``suggestion`` (Pass/Review/Block), ``label``, ``sub_label``, ``score``, ``signals``,
``keywords`` and ``semantic``.

Per item (the others are still judged): 60003 empty text, 93000 text over 8192 UTF-8
bytes. Per request (HTTP 400, nothing judged): 60003 malformed body, items or unknown
profile, 93007 duplicate id, 93008 more than 10 items; 93006 (HTTP 504) when judging took
longer than the 5 s budget. Judging runs on a worker thread, never on the event loop.

With the semantic layer on, the ``profile``'s own example libraries judge too (its
classifier fitted when the daemon started or reloaded), and the texts of concurrent
requests share the embedder's calls (``SharedBatches``).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from streamguard.api.batch import (
    DUPLICATE_ID,
    INVALID_REQUEST,
    MAX_ITEMS,
    TIMED_OUT,
    TOO_MANY_ITEMS,
    Refused,
    invalid,
    item_id,
    parse_batch,
)
from streamguard.config.policy import ProfileConfig
from streamguard.engines.local.moderator import TextModerator

__all__ = [
    "DUPLICATE_ID",
    "EMPTY_TEXT",
    "INVALID_REQUEST",
    "MAX_ITEMS",
    "MAX_TEXT_BYTES",
    "TEXT_PATH",
    "TEXT_TOO_LONG",
    "TIMED_OUT",
    "TOO_MANY_ITEMS",
    "text_route",
]

MAX_TEXT_BYTES = 8192
EMPTY_TEXT = 60003
TEXT_TOO_LONG = 93000


_ITEM = {
    "type": "object",
    "required": ["id", "text"],
    "properties": {"id": {"type": ["string", "integer"]}, "text": {"type": "string"}},
    "additionalProperties": False,
}
_RESULT = {
    "type": "object",
    "required": ["id", "request_id", "error_code", "error_info"],
    "properties": {
        "id": {"type": ["string", "integer"]},
        "request_id": {"type": "string"},
        "error_code": {"type": "integer", "description": "0: judged; 60003 empty; 93000 too long"},
        "error_info": {"type": "string"},
        "suggestion": {"enum": ["Pass", "Review", "Block"]},
        "label": {"type": "string"},
        "sub_label": {"type": "string"},
        "score": {"type": "integer"},
        "signals": {"type": "array", "items": {"type": "string"}},
        "keywords": {"type": "array", "items": {"type": "object"}},
        "semantic": {"type": ["object", "null"]},
    },
}
_REFUSAL = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "error_code", "message"],
            "properties": {
                "code": {"type": "string"},
                "error_code": {"type": "integer"},
                "message": {"type": "string"},
            },
        }
    },
}
TEXT_PATH: dict[str, Any] = {
    "post": {
        "summary": "Judge 1-10 chat texts (Tencent Chat's batch text moderation)",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["items"],
                        "properties": {
                            "items": {"type": "array", "minItems": 1, "items": _ITEM},
                            "profile": {"type": "string"},
                        },
                        "additionalProperties": False,
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "one result per item, in order",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["results"],
                            "properties": {"results": {"type": "array", "items": _RESULT}},
                        }
                    }
                },
            },
            "400": {
                "description": "60003 malformed, 93007 duplicate id, 93008 too many items",
                "content": {"application/json": {"schema": _REFUSAL}},
            },
            "504": {
                "description": "93006: judging took longer than the budget",
                "content": {"application/json": {"schema": _REFUSAL}},
            },
        },
    }
}
"""The route's OpenAPI path item (served in ``/openapi.json``)."""


def text_route(
    moderator: TextModerator,
    profiles: Mapping[str, ProfileConfig] | None = None,
    *,
    budget_seconds: float = 5.0,
) -> web.RouteDef:
    """The route ``POST /v1/moderate/text``, judging with ``moderator`` under ``profiles``."""

    async def moderate_text(request: web.Request) -> web.Response:
        try:
            items, profile = parse_batch(await _body(request), profiles or {}, _item)
            results = await _judge(moderator, items, profile, budget_seconds)
        except Refused as refused:
            return refused.response()
        return web.json_response({"results": results})

    return web.post("/v1/moderate/text", moderate_text)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise invalid("body is not JSON") from exc


def _item(item: Any, index: int) -> tuple[Any, str]:
    if not isinstance(item, dict) or set(item) != {"id", "text"}:
        raise invalid(f"items[{index}] must be an object with exactly 'id' and 'text'")
    found = item_id(item, index)
    if not isinstance(item["text"], str):
        raise invalid(f"items[{index}].text: a string")
    return found, item["text"]


async def _judge(
    moderator: TextModerator,
    items: list[tuple[Any, str]],
    profile: ProfileConfig | None,
    budget_seconds: float,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    judged: list[int] = []
    for given_id, text in items:
        result: dict[str, Any] = {"id": given_id, "request_id": str(uuid.uuid4())}
        size = len(text.encode("utf-8"))
        if not text.strip():
            result |= {"error_code": EMPTY_TEXT, "error_info": "text is empty"}
        elif size > MAX_TEXT_BYTES:
            info = f"text is {size} bytes; at most {MAX_TEXT_BYTES}"
            result |= {"error_code": TEXT_TOO_LONG, "error_info": info}
        else:
            result |= {"error_code": 0, "error_info": ""}
            judged.append(len(results))
        results.append(result)
    if judged:
        texts = [items[n][1] for n in judged]
        work = functools.partial(moderator.judge_many, texts, profile)
        try:
            judgements = await asyncio.wait_for(asyncio.to_thread(work), budget_seconds)
        except TimeoutError as exc:
            message = f"judging took longer than {budget_seconds:g} s; send fewer items"
            raise Refused(504, TIMED_OUT, "timed_out", message) from exc
        for n, judgement in zip(judged, judgements, strict=True):
            results[n] |= judgement.to_json()
    return results
