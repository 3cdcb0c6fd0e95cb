"""The IMS emulator driven by the official ``tencentcloud-sdk-python-ims``: it signs, sends
and parses ImageModeration and its error envelopes as it would against Tencent Cloud."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tencentcloud.common import credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]
from tencentcloud.ims.v20201229 import ims_client, models  # type: ignore[import-untyped]

from streamguard.emulator.ims import ImsEmulator
from streamguard.engines.image.opennsfw import OpenNsfwEngine
from streamguard.tencentcloud.signing import (
    Credentials,
    authorization_header,
    canonical_request,
)
from streamguard.testing.images import HIT_SCORE, MarkerImageEngine, marked
from streamguard.testing.video import pattern

SECRET_ID, SECRET_KEY = "AKIDimsemulator", "ims-emulator-secret"


def test_the_spec_signing_vector_with_service_ims() -> None:
    keys = Credentials("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE")
    headers = {"content-type": "application/json", "host": "ims.tencentcloudapi.com"}
    body = b'{"BizType": "test_1001", "DataId": "1213", "FileUrl": "https://xxx.jpg"}'
    assert hashlib.sha256(body).hexdigest() == (
        "36973baebcf6cb8b0c9d19b90f44a85905f4261da6b131af91362f6153d20a00"
    )
    request = canonical_request("POST", "/", "", headers, ["content-type", "host"], body)
    assert hashlib.sha256(request.encode()).hexdigest() == (
        "55097e58e26a6be789c1c3f9f86ecea7ccca7b6cd2191f99e20656cfa54dc420"
    )
    header = authorization_header(keys, "ims", 1551113065, headers, body)
    assert header.endswith(
        "Signature=a937760c870e78450d96e7eed523f11b61168edb6267c3b9041285a214bacef2"
    )
    assert "/2019-02-25/ims/tc3_request" in header


def png(picture: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="PNG")
    return out.getvalue()


def sdk_client(endpoint: str, secret_key: str = SECRET_KEY) -> Any:
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=10)
    )
    return ims_client.ImsClient(
        credential.Credential(SECRET_ID, secret_key), "ap-guangzhou", profile
    )


def moderate(client: Any, params: dict[str, Any]) -> dict[str, Any]:
    request = models.ImageModerationRequest()
    request.from_json_string(json.dumps(params))
    answer: dict[str, Any] = json.loads(client.ImageModeration(request).to_json_string())
    return answer


@pytest.fixture
async def marker_ims() -> AsyncIterator[ImsEmulator]:
    async with ImsEmulator(MarkerImageEngine(), keys={SECRET_ID: SECRET_KEY}) as emulator:
        yield emulator


async def test_the_official_sdk_gets_a_block_and_a_pass(marker_ims: ImsEmulator) -> None:
    sdk = sdk_client(marker_ims.url.removeprefix("http://"))
    flagged = png(marked())
    blocked = await asyncio.to_thread(
        moderate,
        sdk,
        {
            "BizType": "live_rooms",
            "DataId": "room-1-f00001",
            "FileContent": base64.b64encode(flagged).decode(),
        },
    )
    passed = await asyncio.to_thread(
        moderate, sdk, {"FileContent": base64.b64encode(png(pattern(2, 320, 240))).decode()}
    )
    assert (blocked["Suggestion"], blocked["Label"], blocked["Score"]) == (
        "Block",
        "Porn",
        HIT_SCORE,
    )
    assert (blocked["DataId"], blocked["BizType"]) == ("room-1-f00001", "live_rooms")
    assert blocked["FileMD5"] == hashlib.md5(flagged, usedforsecurity=False).hexdigest()
    assert [r["Label"] for r in blocked["LabelResults"]] == ["Porn"]
    assert blocked["RequestId"]
    assert (passed["Suggestion"], passed["Label"], passed["LabelResults"]) == ("Pass", "Normal", [])
    assert marker_ims.stats.handled["ImageModeration"] == 2


async def test_the_offline_engine_behind_the_emulator() -> None:
    async with ImsEmulator(OpenNsfwEngine(), keys={SECRET_ID: SECRET_KEY}) as emulator:
        sdk = sdk_client(emulator.url.removeprefix("http://"))
        content = base64.b64encode(png(pattern(4, 320, 240))).decode()
        answer = await asyncio.to_thread(moderate, sdk, {"FileContent": content})
    assert (answer["Suggestion"], answer["Label"]) == ("Pass", "Normal")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "InvalidParameterValue.InvalidContent"),
        ({"FileContent": "!!not base64!!"}, "InvalidParameterValue.InvalidContent"),
        ({"FileContent": base64.b64encode(b"tiny").decode()}, "InvalidParameter.ImageDataTooSmall"),
        (
            {"FileContent": base64.b64encode(b"not an image, but long enough").decode()},
            "InvalidParameterValue.InvalidImageContent",
        ),
        (
            {"FileContent": base64.b64encode(png(pattern(1, 40, 40))).decode()},
            "InvalidParameter.ImageSizeTooSmall",
        ),
        (
            {"FileContent": base64.b64encode(png(pattern(1, 9000, 60))).decode()},
            "InvalidParameter.ImageAspectRatioTooLarge",
        ),
        ({"FileUrl": "http://127.0.0.1:9/a.jpg"}, "UnsupportedOperation"),
        ({"DataId": "has spaces", "FileContent": "AAAA"}, "InvalidParameterValue.InvalidDataId"),
        ({"BizType": "x", "FileContent": "AAAA"}, "InvalidParameterValue.InvalidParameter"),
    ],
)
async def test_the_official_sdk_sees_each_validation_error(
    marker_ims: ImsEmulator, params: dict[str, Any], code: str
) -> None:
    sdk = sdk_client(marker_ims.url.removeprefix("http://"))
    with pytest.raises(TencentCloudSDKException) as raised:
        await asyncio.to_thread(moderate, sdk, params)
    assert raised.value.get_code() == code
    assert raised.value.get_request_id()


async def test_a_wrong_key_is_refused_before_anything_is_judged(marker_ims: ImsEmulator) -> None:
    sdk = sdk_client(marker_ims.url.removeprefix("http://"), secret_key="wrong")
    with pytest.raises(TencentCloudSDKException) as raised:
        await asyncio.to_thread(
            moderate, sdk, {"FileContent": base64.b64encode(png(marked())).decode()}
        )
    assert raised.value.get_code() == "AuthFailure.SignatureFailure"
    assert isinstance(marker_ims.engine, MarkerImageEngine)
    assert marker_ims.engine.judged == []
