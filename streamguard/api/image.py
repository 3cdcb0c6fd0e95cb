"""``POST /v1/moderate/image``: judge 1-10 images, in the manner of Tencent Chat's batch
moderation (``shared/spec/batch-moderation.md``, part A), as ``POST /v1/moderate/text``
does for texts.

Request: ``{"items": [{"id": ..., "image": "<base64>"}], "profile": "default"}``
(``profile`` optional; ``id`` a string or an integer, unique in the request). Answer
(200): ``{"results": [...]}``, one per item in order, each with its ``id``, its own
``request_id``, ``error_code`` (0 = judged) and ``error_info``, and when judged
``suggestion`` (Pass/Review/Block, from the profile's image rules), ``label``,
``sub_label``, ``score``, ``risk``, ``reason``, ``scores`` (every label the engine scored),
``unsupported`` (what the engine cannot judge), ``engine`` and ``fingerprint`` (the
picture's dHash, to put it in one of the profile's ``image_libraries``, which decide
before the engine's labels).

An item gives its image in ``image`` (base64) or ``url`` (http/https, fetched through the
streams' address policy by :class:`~streamguard.api.image_urls.ImageFetcher` when the route
has one; refused otherwise).

Per item (the others are still judged): 60003 base64 that does not decode, an image that
cannot be decoded, a URL that cannot be fetched (its address denied by the policy:
``address not allowed by policy``); 93000 an image over :data:`MAX_IMAGE_BYTES` or
:data:`~streamguard.engines.image.pictures.MAX_PIXELS`; 93001 the engine failed on it. Per
request (nothing judged): 60003
malformed body, items or unknown profile (400), 93007 duplicate id (400), 93008 more than 10
items (400), 93000 a body over :data:`MAX_BODY_BYTES` (413); 93006 (504) when judging took
longer than the 5 s budget. Decoding and judging run on worker threads, never on the event
loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
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
from streamguard.api.image_urls import ImageFetcher, ImageUrlError, ImageUrlTooLarge
from streamguard.config.policy import ProfileConfig
from streamguard.core.frame import Picture
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.pictures import ImageTooLarge, UndecodableImage, decode_picture
from streamguard.ingest.frames import picture_fingerprint
from streamguard.moderation.policy import RiskLevel, decide_picture

__all__ = [
    "DUPLICATE_ID",
    "ENGINE_FAILED",
    "IMAGE_PATHS",
    "IMAGE_TOO_LARGE",
    "INVALID_ITEM",
    "INVALID_REQUEST",
    "MAX_BODY_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_ITEMS",
    "TIMED_OUT",
    "TOO_MANY_ITEMS",
    "image_route",
]

MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""An image may be this large (decoded from base64), as behind a Tencent Chat image URL."""
MAX_BODY_BYTES = MAX_ITEMS * (MAX_IMAGE_BYTES * 4 // 3 + 4) + 64 * 1024
"""Ten images of the largest size in base64, and room for the rest of the JSON."""
INVALID_ITEM = 60003
IMAGE_TOO_LARGE = 93000
ENGINE_FAILED = 93001

_SUGGESTIONS = {
    RiskLevel.HIGH: Suggestion.BLOCK,
    RiskLevel.MEDIUM: Suggestion.REVIEW,
    RiskLevel.LOW: Suggestion.PASS,
    RiskLevel.NONE: Suggestion.PASS,
}


_RESULT = {
    "type": "object",
    "required": ["id", "request_id", "error_code", "error_info"],
    "properties": {
        "id": {"type": ["string", "integer"]},
        "request_id": {"type": "string"},
        "error_code": {"type": "integer", "description": "0 = judged"},
        "error_info": {"type": "string"},
        "suggestion": {"enum": ["Pass", "Review", "Block"]},
        "label": {"type": "string"},
        "sub_label": {"type": "string"},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "risk": {"enum": ["none", "low", "medium", "high"]},
        "scores": {"type": "object", "additionalProperties": {"type": "integer"}},
        "unsupported": {"type": "array", "items": {"type": "string"}},
        "engine": {"type": "string"},
        "reason": {"type": "string", "description": "why the profile decided so"},
        "fingerprint": {
            "type": ["string", "null"],
            "pattern": "^[0-9a-f]{16}$",
            "description": "the image's dHash, for image libraries",
        },
    },
}
IMAGE_PATHS: dict[str, Any] = {
    "/v1/moderate/image": {
        "post": {
            "summary": "Judge 1-10 images (base64 or URL) under a profile's image rules",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["items"],
                            "additionalProperties": False,
                            "properties": {
                                "profile": {"type": "string"},
                                "items": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": MAX_ITEMS,
                                    "items": {
                                        "type": "object",
                                        "required": ["id"],
                                        "properties": {
                                            "id": {"type": ["string", "integer"]},
                                            "image": {
                                                "type": "string",
                                                "contentEncoding": "base64",
                                            },
                                            "url": {
                                                "type": "string",
                                                "format": "uri",
                                                "description": "http(s), fetched through"
                                                " the address policy",
                                            },
                                        },
                                    },
                                },
                            },
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
                                "properties": {"results": {"type": "array", "items": _RESULT}},
                            }
                        }
                    },
                },
                "400": {"description": "malformed request, too many items, duplicate ids"},
                "413": {"description": "body too large"},
                "504": {"description": "judging took longer than the budget"},
            },
        }
    }
}
"""The route's part of the OpenAPI document."""


class _ItemError(Exception):
    """One item cannot be judged: its Tencent-style code and why."""

    def __init__(self, code: int, info: str) -> None:
        super().__init__(info)
        self.code = code


def image_route(
    engine: ImageEngine,
    profiles: Mapping[str, ProfileConfig] | None = None,
    *,
    budget_seconds: float = 5.0,
    fetcher: ImageFetcher | None = None,
) -> web.RouteDef:
    """The route ``POST /v1/moderate/image``, judging with ``engine`` under ``profiles``;
    items with a ``url`` are fetched by ``fetcher`` (none: refused one by one)."""

    async def moderate_image(request: web.Request) -> web.Response:
        try:
            items, named = parse_batch(await _body(request), profiles or {}, _item)
            profile = named or (profiles or {}).get("default", ProfileConfig())
            results = await _judge(engine, items, profile, budget_seconds, fetcher)
        except Refused as refused:
            return refused.response()
        return web.json_response({"results": results})

    return web.post("/v1/moderate/image", moderate_image)


async def _body(request: web.Request) -> Any:
    """The JSON body, read up to :data:`MAX_BODY_BYTES` (the API's usual 64 KB limit is for
    the other routes)."""
    too_large = Refused(
        413, IMAGE_TOO_LARGE, "request_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes"
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    data = bytearray()
    async for piece in request.content.iter_chunked(64 * 1024):
        data += piece
        if len(data) > MAX_BODY_BYTES:
            raise too_large
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("body is not JSON") from exc


def _item(item: Any, index: int) -> tuple[Any, dict[str, Any]]:
    if not isinstance(item, dict) or "id" not in item or len(set(item) & {"image", "url"}) != 1:
        raise invalid(f"items[{index}] must be an object with 'id' and one of 'image' or 'url'")
    unknown = sorted(set(item) - {"id", "image", "url"})
    if unknown:
        raise invalid(f"items[{index}] has unknown keys: {unknown}")
    found = item_id(item, index)
    for key in ("image", "url"):
        if key in item and not isinstance(item[key], str):
            raise invalid(f"items[{index}].{key} must be a string")
    return found, item


def _image_bytes(text: str) -> bytes:
    """An item's base64 ``image``, decoded, or ``_ItemError``."""
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise _ItemError(IMAGE_TOO_LARGE, f"the image exceeds {MAX_IMAGE_BYTES} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _ItemError(INVALID_ITEM, "'image' is not base64") from exc
    return data


def _picture(data: bytes | _ItemError) -> Picture:
    """The item's picture, or ``_ItemError``. Blocking (base64 and image decoding)."""
    if isinstance(data, _ItemError):
        raise data
    if not data:
        raise _ItemError(INVALID_ITEM, "the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise _ItemError(
            IMAGE_TOO_LARGE, f"the image is {len(data)} bytes; at most {MAX_IMAGE_BYTES}"
        )
    try:
        return decode_picture(data)
    except ImageTooLarge as exc:
        raise _ItemError(IMAGE_TOO_LARGE, str(exc)) from exc
    except UndecodableImage as exc:
        raise _ItemError(INVALID_ITEM, str(exc)) from exc


def _decoded(sources: list[str | bytes | _ItemError]) -> list[Picture | _ItemError]:
    out: list[Picture | _ItemError] = []
    for source in sources:
        try:
            out.append(_picture(_image_bytes(source) if isinstance(source, str) else source))
        except _ItemError as exc:
            out.append(exc)
    return out


async def _fetched(
    items: list[tuple[Any, dict[str, Any]]], fetcher: ImageFetcher | None
) -> list[str | bytes | _ItemError]:
    """Each item's base64 text, or the bytes at its URL (fetched at once), or why not."""

    async def one(item: dict[str, Any]) -> str | bytes | _ItemError:
        if "url" not in item:
            return str(item["image"])
        if fetcher is None:
            return _ItemError(INVALID_ITEM, "this server does not fetch images from URLs")
        try:
            return await fetcher.fetch(item["url"])
        except ImageUrlTooLarge as exc:
            return _ItemError(IMAGE_TOO_LARGE, str(exc))
        except ImageUrlError as exc:
            return _ItemError(INVALID_ITEM, str(exc))

    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(one(item), name=f"moderate-image.fetch[{n}]")
            for n, (_, item) in enumerate(items)
        ]
    return [task.result() for task in tasks]


def _fingerprints(pictures: list[Picture | _ItemError]) -> list[int | None]:
    return [None if isinstance(p, _ItemError) else picture_fingerprint(p) for p in pictures]


async def _judge(
    engine: ImageEngine,
    items: list[tuple[Any, dict[str, Any]]],
    profile: ProfileConfig,
    budget_seconds: float,
    fetcher: ImageFetcher | None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [
        {"id": given_id, "request_id": str(uuid.uuid4())} for given_id, _ in items
    ]
    try:
        async with asyncio.timeout(budget_seconds):
            sources = await _fetched(items, fetcher)
            pictures = await asyncio.to_thread(_decoded, sources)
            fingerprints = await asyncio.to_thread(_fingerprints, pictures)
            judged = [(n, p) for n, p in enumerate(pictures) if not isinstance(p, _ItemError)]
            verdicts = await engine.judge(
                [(results[n]["request_id"], p) for n, p in judged],
                biz_type=profile.image_biz_type,
            )
    except TimeoutError as exc:
        message = f"judging took longer than {budget_seconds:g} s; send fewer items"
        raise Refused(504, TIMED_OUT, "timed_out", message) from exc
    for result, picture in zip(results, pictures, strict=True):
        if isinstance(picture, _ItemError):
            result |= {"error_code": picture.code, "error_info": str(picture)}
    for (n, _), verdict in zip(judged, verdicts, strict=True):
        results[n] |= _answer(verdict, profile, fingerprints[n])
    return results


def _answer(verdict: Verdict, profile: ProfileConfig, fingerprint: int | None) -> dict[str, Any]:
    """One judged item's answer: the engine's finding, the profile's suggestion (an image
    library match decides alone, also when the engine failed)."""
    decision = decide_picture(profile, verdict, fingerprint=fingerprint)
    hex_print = None if fingerprint is None else f"{fingerprint:016x}"
    if verdict.outcome is not Outcome.MODERATED and not decision.custom:
        return {
            "error_code": ENGINE_FAILED,
            "error_info": verdict.reason or verdict.outcome.value,
            "fingerprint": hex_print,
        }
    return {
        "error_code": 0,
        "error_info": "",
        "suggestion": _SUGGESTIONS[decision.risk].value,
        "label": decision.label if decision.custom else verdict.label,
        "sub_label": verdict.sub_label,
        "score": decision.score if decision.custom else verdict.score,
        "risk": decision.risk.value,
        "reason": decision.reason,
        "scores": verdict.details.get("scores", {}),
        "unsupported": list(verdict.unsupported),
        "engine": verdict.engine,
        "fingerprint": hex_print,
    }
