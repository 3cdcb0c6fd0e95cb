"""The official ``tencentcloud-sdk-python-ims`` drives the IMS emulator as it would IMS: it
signs for ``ims``, sends both actions, parses their answers and the error envelope."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from tencentcloud.common import credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]
from tencentcloud.ims.v20201229 import ims_client, models  # type: ignore[import-untyped]

from tests.engines.ims.peers import RED, YELLOW, image_of, ims_peers
from tests.support.ams import SECRET_ID, SECRET_KEY
from tests.support.waiting import eventually


def sdk_client(endpoint: str, secret_key: str = SECRET_KEY) -> Any:
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=10)
    )
    return ims_client.ImsClient(
        credential.Credential(SECRET_ID, secret_key), "ap-guangzhou", profile
    )


def call(client: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    response = getattr(client, action)(request)
    answer: dict[str, Any] = json.loads(response.to_json_string())
    return answer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def test_official_sdk_runs_image_moderation_by_content_and_by_url() -> None:
    async with ims_peers() as (emulator, peer):
        peer.images["ad"] = image_of(YELLOW)
        sdk = sdk_client(emulator.url.removeprefix("http://"))
        by_content = await asyncio.to_thread(
            call,
            sdk,
            "ImageModeration",
            {"BizType": "sdk_test", "DataId": "frame-1", "FileContent": b64(image_of(RED)),
             "User": {"UserId": "u1", "AccountType": "7"}, "Device": {"Ip": "10.0.0.1"}},
        )  # fmt: skip
        by_url = await asyncio.to_thread(
            call, sdk, "ImageModeration", {"DataId": "frame-2", "FileUrl": peer.url("img/ad")}
        )
        clean = await asyncio.to_thread(
            call, sdk, "ImageModeration", {"FileContent": b64(image_of(None))}
        )
    assert (by_content["Suggestion"], by_content["Label"], by_content["SubLabel"]) == (
        "Block",
        "Porn",
        "SexBehavior",
    )
    assert (by_content["DataId"], by_content["BizType"], by_content["Score"]) == (
        "frame-1",
        "sdk_test",
        95,
    )
    assert by_content["LabelResults"][0]["Scene"] == "Porn"
    assert (by_url["Suggestion"], by_url["Label"]) == ("Review", "Ad")
    assert by_url["ObjectResults"][0]["Names"] == ["QRCODE"]
    assert (clean["Suggestion"], clean["Label"], clean["LabelResults"]) == ("Pass", "Normal", [])
    assert by_content["RequestId"]
    assert len(by_content["FileMD5"]) == 32


async def test_official_sdk_creates_an_async_task_and_the_result_is_called_back() -> None:
    async with ims_peers() as (emulator, peer):
        sdk = sdk_client(emulator.url.removeprefix("http://"))
        accepted = await asyncio.to_thread(
            call,
            sdk,
            "CreateImageModerationAsyncTask",
            {"CallbackUrl": peer.url("callback"), "DataId": "batch-7", "BizType": "sdk_test",
             "FileContent": b64(image_of(RED))},
        )  # fmt: skip
        await eventually(lambda: len(peer.callbacks) == 1)
    assert accepted["DataId"] == "batch-7"
    assert accepted["RequestId"]
    body = peer.callbacks[0]
    assert (body["DataId"], body["Suggestion"], body["Label"]) == ("batch-7", "Block", "Porn")
    # the SDK's own response model reads the callback body
    parsed = models.ImageModerationResponse()
    parsed._deserialize(body)
    assert (parsed.Suggestion, parsed.LabelResults[0].Label) == ("Block", "Porn")


async def test_official_sdk_meets_the_spec_error_codes() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("ImageModeration", {}),
        ("ImageModeration", {"FileContent": "%%%notbase64"}),
        ("ImageModeration", {"FileContent": b64(b"tiny")}),
        ("ImageModeration", {"FileContent": b64(image_of(RED, (40, 40)))}),
        ("ImageModeration", {"FileContent": b64(image_of(RED, (4600, 51)))}),
        ("ImageModeration", {"FileContent": b64(b"this is not an image at all, only text")}),
        ("ImageModeration", {"DataId": "bad id!", "FileContent": b64(image_of(RED))}),
        ("ImageModeration", {"BizType": "x", "FileContent": b64(image_of(RED))}),
        ("CreateImageModerationAsyncTask", {"FileContent": b64(image_of(RED))}),
        ("CreateImageModerationAsyncTask",
         {"CallbackUrl": "ftp://nowhere", "FileContent": b64(image_of(RED))}),
    ]  # fmt: skip
    codes = []
    async with ims_peers() as (emulator, peer):
        sdk = sdk_client(emulator.url.removeprefix("http://"))
        for action, params in cases:
            try:
                await asyncio.to_thread(call, sdk, action, params)
            except TencentCloudSDKException as exc:
                codes.append(exc.get_code())
        for path in ("redirect", "img/missing"):
            try:
                await asyncio.to_thread(call, sdk, "ImageModeration", {"FileUrl": peer.url(path)})
            except TencentCloudSDKException as exc:
                codes.append(exc.get_code())
        wrong_key = sdk_client(emulator.url.removeprefix("http://"), secret_key="wrong")
        try:
            await asyncio.to_thread(call, wrong_key, "ImageModeration", {"FileContent": "AA=="})
        except TencentCloudSDKException as exc:
            codes.append(exc.get_code())
    assert codes == [
        "InvalidParameterValue.InvalidContent",
        "InvalidParameterValue.InvalidContent",
        "InvalidParameter.ImageDataTooSmall",
        "InvalidParameter.ImageSizeTooSmall",
        "InvalidParameter.ImageAspectRatioTooLarge",
        "InvalidParameterValue.InvalidImageContent",
        "InvalidParameterValue.InvalidDataId",
        "InvalidParameterValue.InvalidParameter",
        "MissingParameter",
        "InvalidParameterValue.InvalidCallbackUrl",
        "ResourceUnavailable.ImageDownloadError",
        "ResourceUnavailable.ImageDownloadError",
        "AuthFailure.SignatureFailure",
    ]
