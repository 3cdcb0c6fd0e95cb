"""``ImsClient`` against the IMS emulator over real HTTP: both actions, callbacks, IMS's
retryable codes, the errors that must not be retried, and the rate limits."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import deque
from dataclasses import replace

import pytest

from streamguard.emulator import AmsEmulator
from streamguard.tencentcloud.client import RetryPolicy
from streamguard.tencentcloud.errors import AmsError, AmsRetryableError
from streamguard.tencentcloud.ims_client import ImsClient
from streamguard.tencentcloud.ims_errors import bad_image, operator_problem
from streamguard.tencentcloud.ims_models import (
    AsyncTaskRequest,
    ImageModerationRequest,
    callback_result,
)
from streamguard.tencentcloud.signing import Credentials, authorization_header, canonical_request
from tests.engines.ims.peers import BLUE, MAGENTA, RED, image_of, ims_peers
from tests.support.ams import CREDENTIALS, no_sleep
from tests.support.waiting import eventually


def client_for(emulator: AmsEmulator, attempts: int = 3) -> ImsClient:
    return ImsClient(
        emulator.url,
        CREDENTIALS,
        retry=RetryPolicy(attempts=attempts, total_seconds=10),
        sleep=no_sleep(),
    )


def content(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_signing_vector_for_ims() -> None:
    keys = Credentials("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE")
    body = b'{"BizType": "test_1001", "DataId": "1213", "FileUrl": "https://xxx.jpg"}'
    headers = {"Content-Type": "application/json", "Host": "ims.tencentcloudapi.com"}
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


async def test_image_moderation_by_content_url_and_gif_frames() -> None:
    async with ims_peers() as (emulator, peer):
        peer.images["blue"] = image_of(BLUE)
        async with client_for(emulator) as client:
            red = await client.image_moderation(
                ImageModerationRequest(
                    biz_type="room_profile", data_id="f-1", file_content=content(image_of(RED))
                )
            )
            blue = await client.image_moderation(
                ImageModerationRequest(data_id="f-2", file_url=peer.url("img/blue"))
            )
            clean = await client.image_moderation(
                ImageModerationRequest(file_content=content(image_of(None)))
            )
        calls = dict(client.calls)
    assert (red.suggestion, red.label, red.sub_label, red.score) == (
        "Block",
        "Porn",
        "SexBehavior",
        95,
    )
    assert (red.data_id, red.biz_type, red.label_results[0].details[0].name) == (
        "f-1",
        "room_profile",
        "SexBehavior",
    )
    assert (blue.suggestion, blue.label, blue.data_id) == ("Block", "Terror", "f-2")
    assert (clean.suggestion, clean.label) == ("Pass", "Normal")
    assert calls == {"ImageModeration": 3}


async def test_async_task_is_called_back_and_read_bare_or_wrapped() -> None:
    async with ims_peers() as (emulator, peer), client_for(emulator) as client:
        accepted = await client.create_async_task(
            AsyncTaskRequest(
                data_id="batch-1",
                callback_url=peer.url("callback"),
                file_content=content(image_of(MAGENTA)),
            )
        )
        await eventually(lambda: len(peer.callbacks) == 1)
        emulator.ims.faults.wrapped_callbacks = True
        emulator.ims.faults.duplicate_callbacks = True
        await client.create_async_task(
            AsyncTaskRequest(
                data_id="batch-2",
                callback_url=peer.url("callback"),
                file_content=content(image_of(RED)),
            )
        )
        await eventually(lambda: len(peer.callbacks) == 3)
    results = [callback_result(json.dumps(body).encode()) for body in peer.callbacks]
    assert accepted.data_id == "batch-1"
    assert [(r.data_id, r.suggestion) for r in results if r is not None] == [
        ("batch-1", "Review"),
        ("batch-2", "Block"),
        ("batch-2", "Block"),
    ]
    assert "Response" in peer.callbacks[1]
    assert callback_result(b"not json") is None
    assert callback_result(b'{"Suggestion": "Block"}') is None  # no DataId to match


async def test_model_trouble_is_retried_and_operator_problems_are_not() -> None:
    async with ims_peers() as (emulator, _):
        emulator.ims.faults.fail_next = deque(
            ["ResourceUnavailable.ModelCallFailed", "InternalError"]
        )
        async with client_for(emulator) as client:
            answer = await client.image_moderation(
                ImageModerationRequest(file_content=content(image_of(RED)))
            )
            emulator.ims.faults.fail_next = deque(["UnauthorizedOperation.Unauthorized"])
            with pytest.raises(AmsError) as refused:
                await client.image_moderation(
                    ImageModerationRequest(file_content=content(image_of(RED)))
                )
            with pytest.raises(AmsError) as tiny:
                await client.image_moderation(
                    ImageModerationRequest(file_content=content(image_of(RED, (30, 30))))
                )
        outcomes = dict(client.transport.outcomes)
    assert answer.suggestion == "Block"
    assert outcomes[("ImageModeration", "ResourceUnavailable.ModelCallFailed")] == 1
    assert operator_problem(refused.value)
    assert not bad_image(refused.value)
    assert bad_image(tiny.value)
    assert tiny.value.code == "InvalidParameter.ImageSizeTooSmall"
    assert outcomes[("ImageModeration", "InvalidParameter.ImageSizeTooSmall")] == 1


async def test_a_failed_download_is_retried_once() -> None:
    async with ims_peers() as (emulator, peer):
        async with client_for(emulator) as client:
            with pytest.raises(AmsError) as failed:
                await client.image_moderation(
                    ImageModerationRequest(file_url=peer.url("img/missing"))
                )
        calls = dict(client.calls)
    assert failed.value.code == "ResourceUnavailable.ImageDownloadError"
    assert calls == {"ImageModeration": 2}


async def test_the_emulator_enforces_the_async_rate_and_the_client_paces_itself() -> None:
    async with ims_peers() as (emulator, peer):
        emulator.ims.options = replace(emulator.ims.options, async_per_second=1.0)
        request = AsyncTaskRequest(
            data_id="rated", callback_url=peer.url("callback"), file_content=content(image_of(RED))
        )
        async with client_for(emulator, attempts=1) as client:
            await client.create_async_task(request)
            with pytest.raises(AmsRetryableError) as throttled:
                await client.create_async_task(request)
        sleeps = no_sleep()
        now = [0.0]
        async with ImsClient(
            emulator.url,
            CREDENTIALS,
            async_per_second=2.0,
            sleep=sleeps,
            monotonic=lambda: now[0],
        ) as paced:
            emulator.ims.options = replace(emulator.ims.options, async_per_second=100.0)
            for _ in range(4):
                await paced.create_async_task(request)
    assert throttled.value.code == "RequestLimitExceeded"
    # two calls fit the burst; the clock stands still, so each later one waits 1/rate more
    assert sleeps.delays == [0.5, 1.0]


def test_requests_refuse_what_ims_would() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ImageModerationRequest(file_content="AA==", file_url="http://x/y.jpg")
    with pytest.raises(ValueError, match="biz_type"):
        ImageModerationRequest(biz_type="no spaces", file_content="AA==")
    wire = ImageModerationRequest(data_id="a@b#c", file_url="http://x/y.jpg").to_api()
    assert wire == {"DataId": "a@b#c", "FileUrl": "http://x/y.jpg"}
