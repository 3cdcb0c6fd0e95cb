"""``POST /v1/moderate/image`` through a small aiohttp app: the real offline engine for
pictures it passes, the marker fake (``streamguard.testing.images``) for hits, bad items
answered one by one."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from streamguard.api import image as image_api
from streamguard.api.image import image_route
from streamguard.config.policy import ImageLibrary, LabelRule, ProfileConfig
from streamguard.core.frame import Picture
from streamguard.core.verdict import Verdict
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.opennsfw import UNSUPPORTED, OpenNsfwEngine
from streamguard.engines.image.pictures import encode_jpeg
from streamguard.ingest.frames import picture_fingerprint
from streamguard.testing.images import MarkerImageEngine, marked
from streamguard.testing.video import pattern

LISTED = pattern(9, 320, 240)
"""A picture in the "libraries" profile's block library; ``marked()`` is in its exempt one."""
PROFILES = {
    "default": ProfileConfig(),
    "libraries": ProfileConfig(
        image_libraries=[
            ImageLibrary(
                id="banned-logos",
                action="block",
                label="Ad",
                fingerprints=[f"{picture_fingerprint(LISTED):016x}"],
            ),
            ImageLibrary(
                id="our-brand",
                action="exempt",
                fingerprints=[f"{picture_fingerprint(marked()):016x}"],
            ),
        ]
    ),
    "strict": ProfileConfig(
        image_labels={"Porn": LabelRule(medium=50, high=99)}, image_biz_type="strict_rooms"
    ),
    "porn_off": ProfileConfig(image_labels={"Porn": LabelRule(enabled=False)}),
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png(picture: Picture) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="PNG")
    return out.getvalue()


async def serve(engine: ImageEngine, budget: float = 5.0) -> TestClient[Any, Any]:
    app = web.Application()
    app.add_routes([image_route(engine, PROFILES, budget_seconds=budget)])
    return TestClient(TestServer(app))


@pytest.fixture(scope="module")
def real_engine() -> OpenNsfwEngine:
    return OpenNsfwEngine()


@pytest.fixture
async def real(real_engine: OpenNsfwEngine) -> AsyncIterator[TestClient[Any, Any]]:
    async with await serve(real_engine) as client:
        yield client


@pytest.fixture
async def fake() -> AsyncIterator[TestClient[Any, Any]]:
    async with await serve(MarkerImageEngine()) as client:
        yield client


async def post(client: TestClient[Any, Any], body: Any) -> tuple[int, dict[str, Any]]:
    # A file-like body: aiohttp warns about megabytes sent as raw bytes.
    data = io.BytesIO(json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    response = await client.post("/v1/moderate/image", data=data, headers=headers)
    return response.status, await response.json()


async def test_good_items_are_judged_and_each_bad_one_answered_alone(
    real: TestClient[Any, Any],
) -> None:
    status, body = await post(
        real,
        {
            "items": [
                {"id": 0, "image": b64(png(pattern(1, 320, 240)))},
                {"id": "jpeg", "image": b64(encode_jpeg(pattern(2, 640, 480)))},
                {"id": 2, "url": "http://127.0.0.1:9/a.jpg"},
                {"id": 3, "image": "not base64!"},
                {"id": 4, "image": b64(b"GIF89a but not really an image")},
                {"id": 5, "image": b64(bytes(image_api.MAX_IMAGE_BYTES + 1))},
            ]
        },
    )
    assert status == 200
    results = body["results"]
    assert [r["id"] for r in results] == [0, "jpeg", 2, 3, 4, 5]
    assert len({r["request_id"] for r in results}) == 6
    for judged in results[:2]:
        assert (judged["error_code"], judged["error_info"]) == (0, "")
        assert (judged["suggestion"], judged["label"], judged["risk"]) == ("Pass", "Normal", "none")
        assert judged["scores"]["Porn"] < 25
        assert judged["unsupported"] == list(UNSUPPORTED)
        assert judged["engine"] == "opennsfw"
    assert results[2]["error_code"] == image_api.INVALID_ITEM
    assert "does not fetch images from URLs" in results[2]["error_info"]
    assert results[3]["error_code"] == image_api.INVALID_ITEM
    assert "base64" in results[3]["error_info"]
    assert results[4]["error_code"] == image_api.INVALID_ITEM
    assert "not an image" in results[4]["error_info"]
    assert results[5]["error_code"] == image_api.IMAGE_TOO_LARGE
    for bad in results[2:]:
        assert "suggestion" not in bad


async def test_a_picture_of_too_many_pixels_is_refused_unread(real: TestClient[Any, Any]) -> None:
    out = io.BytesIO()
    Image.new("L", (8000, 6000)).save(out, format="PNG")  # 48 Mpx in a few kilobytes
    status, body = await post(real, {"items": [{"id": 1, "image": b64(out.getvalue())}]})
    assert status == 200
    assert body["results"][0]["error_code"] == image_api.IMAGE_TOO_LARGE
    assert "pixels" in body["results"][0]["error_info"]


@pytest.mark.parametrize(
    ("profile", "suggestion", "risk"),
    [(None, "Block", "high"), ("strict", "Review", "medium"), ("porn_off", "Pass", "none")],
)
async def test_a_hit_is_answered_by_the_profile_image_rules(
    fake: TestClient[Any, Any], profile: str | None, suggestion: str, risk: str
) -> None:
    body: dict[str, Any] = {
        "items": [
            {"id": "hit", "image": b64(png(marked()))},
            {"id": "ok", "image": b64(png(pattern(3, 64, 48)))},
        ]
    }
    if profile is not None:
        body["profile"] = profile
    status, answer = await post(fake, body)
    assert status == 200
    hit, ok = answer["results"]
    assert (hit["suggestion"], hit["risk"], hit["label"], hit["score"]) == (
        suggestion,
        risk,
        "Porn",
        95,
    )
    assert (ok["suggestion"], ok["label"], ok["risk"]) == ("Pass", "Normal", "none")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"items": [{"id": n, "image": "AA=="} for n in range(11)]}, 400, image_api.TOO_MANY_ITEMS),
        (
            {"items": [{"id": 1, "image": "AA=="}, {"id": 1, "image": "AA=="}]},
            400,
            image_api.DUPLICATE_ID,
        ),
        ({"items": []}, 400, image_api.INVALID_REQUEST),
        ({"items": [{"id": 1}]}, 400, image_api.INVALID_REQUEST),
        (
            {"items": [{"id": 1, "image": "AA==", "url": "http://x"}]},
            400,
            image_api.INVALID_REQUEST,
        ),
        ({"items": [{"id": True, "image": "AA=="}]}, 400, image_api.INVALID_REQUEST),
        ({"items": [{"id": 1, "image": 7}]}, 400, image_api.INVALID_REQUEST),
        (
            {"items": [{"id": 1, "image": "AA=="}], "profile": "nope"},
            400,
            image_api.INVALID_REQUEST,
        ),
        ({"items": [{"id": 1, "image": "AA=="}], "extra": 1}, 400, image_api.INVALID_REQUEST),
        ([1, 2], 400, image_api.INVALID_REQUEST),
    ],
)
async def test_a_malformed_request_is_refused_whole(
    fake: TestClient[Any, Any], body: Any, status: int, code: int
) -> None:
    got, answer = await post(fake, body)
    assert got == status
    assert answer["error"]["error_code"] == code
    assert answer["error"]["message"]


async def test_a_body_that_is_not_json_or_too_large_is_refused(
    fake: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await fake.post("/v1/moderate/image", data=b"{not json")
    assert response.status == 400
    monkeypatch.setattr(image_api, "MAX_BODY_BYTES", 1000)
    big = {"items": [{"id": 1, "image": b64(bytes(2000))}]}
    response = await fake.post("/v1/moderate/image", json=big)
    assert response.status == 413
    assert (await response.json())["error"]["error_code"] == image_api.IMAGE_TOO_LARGE


class _Stuck:
    """An engine that does not answer until released."""

    name = "stuck"
    version = "1"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def judge(
        self, pictures: Sequence[tuple[str, Picture]], *, biz_type: str | None = None
    ) -> list[Verdict]:
        await self.release.wait()
        return []

    async def aclose(self) -> None:
        self.release.set()


async def test_judging_past_the_budget_answers_504() -> None:
    engine = _Stuck()
    async with await serve(engine, budget=0.2) as client:
        status, answer = await post(client, {"items": [{"id": 1, "image": b64(png(marked()))}]})
    assert status == 504
    assert answer["error"]["error_code"] == image_api.TIMED_OUT
    await engine.aclose()
    assert np.all(marked()[0, 0] == (255, 0, 255))


async def test_image_libraries_decide_before_the_engine(fake: TestClient[Any, Any]) -> None:
    other = pattern(10, 320, 240)
    status, body = await post(
        fake,
        {
            "profile": "libraries",
            "items": [
                {"id": "listed", "image": b64(encode_jpeg(LISTED))},  # re-encoded: still a match
                {"id": "exempt", "image": b64(png(marked()))},  # the fake would Block it
                {"id": "other", "image": b64(png(other))},
            ],
        },
    )
    assert status == 200
    listed, exempt, unlisted = body["results"]
    assert (listed["suggestion"], listed["label"], listed["risk"]) == ("Block", "Ad", "high")
    assert "banned-logos" in listed["reason"]
    assert (exempt["suggestion"], exempt["risk"]) == ("Pass", "none")
    assert "our-brand" in exempt["reason"]
    assert (unlisted["suggestion"], unlisted["label"]) == ("Pass", "Normal")
    assert unlisted["fingerprint"] == f"{picture_fingerprint(other):016x}"


async def test_the_profile_image_biz_type_goes_to_the_engine() -> None:
    engine = MarkerImageEngine()
    async with await serve(engine) as client:
        for profile in ("strict", "default"):
            body = {"profile": profile, "items": [{"id": 1, "image": b64(png(marked()))}]}
            assert (await post(client, body))[0] == 200
    assert engine.biz_types == ["strict_rooms", None]
