"""The IMS emulator's own behaviour: GIF sampling, the answer forms clients must survive,
the real download rules, request faults, and IMS living beside AMS on one port."""

from __future__ import annotations

import base64
from dataclasses import replace

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from streamguard.core.verdict import Suggestion
from streamguard.emulator import AmsEmulator
from streamguard.emulator.faults import Faults
from streamguard.emulator.ims_actions import SYNC_LIMITS
from streamguard.emulator.ims_images import read_image
from streamguard.emulator.ims_samples import picture, sample_image
from streamguard.emulator.ims_validation import check_ims
from streamguard.emulator.validation import ApiError
from streamguard.engines.ims import verdicts
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.ims_client import ImsClient
from streamguard.tencentcloud.ims_models import ImageModerationRequest
from tests.engines.ims.peers import RED, image_of, ims_peers
from tests.support.ams import CREDENTIALS, no_sleep


def ims(emulator: AmsEmulator) -> ImsClient:
    return ImsClient(emulator.url, CREDENTIALS, retry=RetryPolicy(attempts=1), sleep=no_sleep())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def test_gif_frames_are_sampled_by_interval_and_max_frames() -> None:
    grey, red = picture(120, 90), picture(120, 90, RED)
    gif = b64(sample_image([grey, grey, grey, red, grey], "gif"))
    async with ims_peers() as (emulator, _), ims(emulator) as client:
        first_only = await client.image_moderation(ImageModerationRequest(file_content=gif))
        every_third = await client.image_moderation(
            ImageModerationRequest(file_content=gif, interval=3, max_frames=2)
        )
        every_second = await client.image_moderation(
            ImageModerationRequest(file_content=gif, interval=2, max_frames=10)
        )
    assert first_only.suggestion == "Pass"  # defaults: the first frame only
    assert every_third.suggestion == "Block"  # frames 0 and 3
    assert every_second.suggestion == "Pass"  # frames 0, 2 and 4


@pytest.mark.parametrize("form", ["empty", "null", "absent"])
async def test_result_arrays_in_every_form_still_give_the_verdict(form: str) -> None:
    async with ims_peers() as (emulator, _), ims(emulator) as client:
        emulator.ims.faults.arrays = form  # type: ignore[assignment]
        answer = await client.image_moderation(
            ImageModerationRequest(file_content=b64(image_of(RED)))
        )
    assert answer.label_results == []
    assert answer.object_results == []
    verdict = verdicts.from_answer("f", answer)
    assert (verdict.suggestion, verdict.label) == (Suggestion.BLOCK, "Porn")


async def test_a_download_that_outlasts_both_tries_fails_as_ims_says() -> None:
    async with ims_peers() as (emulator, peer), ims(emulator) as client:
        peer.images["red"] = image_of(RED)
        emulator.ims.options = replace(emulator.ims.options, sync_download=(0.2, 0.2))
        with pytest.raises(AmsError) as slow:
            await client.image_moderation(ImageModerationRequest(file_url=peer.url("slow")))
        fine = await client.image_moderation(ImageModerationRequest(file_url=peer.url("img/red")))
    assert slow.value.code == "ResourceUnavailable.ImageDownloadError"
    assert fine.suggestion == "Block"


async def test_request_faults_and_the_sync_rate_limit() -> None:
    async with ims_peers() as (emulator, _), ims(emulator) as client:
        request = ImageModerationRequest(file_content=b64(image_of(None)))
        emulator.ims.request_faults = Faults(throttle=1.0)
        with pytest.raises(AmsError) as throttled:
            await client.image_moderation(request)
        emulator.ims.request_faults = Faults()
        emulator.ims.options = replace(emulator.ims.options, sync_per_second=2.0)
        codes = []
        for _ in range(4):
            try:
                await client.image_moderation(request)
                codes.append("OK")
            except AmsError as exc:
                codes.append(exc.code)
    assert throttled.value.code == "RequestLimitExceeded"
    assert codes[:2] == ["OK", "OK"]
    assert "RequestLimitExceeded" in codes[2:]


async def test_ims_and_ams_share_the_port_by_signed_service() -> None:
    async with ims_peers() as (emulator, _):
        async with AmsClient(emulator.url, CREDENTIALS, retry=RetryPolicy(attempts=1)) as ams:
            with pytest.raises(AmsError) as wrong_service:
                await ams.call("ImageModeration", {"FileContent": b64(image_of(RED))})
            listed = await ams.call("DescribeTasks", {"Limit": 1})
        async with ims(emulator) as client:
            with pytest.raises(AmsError) as wrong_action:
                await client.transport.call("DescribeTasks", {"Limit": 1})
    assert wrong_service.value.code == "InvalidAction"
    assert listed["Total"] == "0"
    assert wrong_action.value.code == "InvalidAction"
    assert emulator.stats.calls["DescribeTasks"] == 1
    assert emulator.ims.stats.calls["DescribeTasks"] == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["BizType", "DataId", "FileContent", "FileUrl", "Interval", "MaxFrames", "User", "Device",
     "Type", "CallbackUrl", "FileUrlList", "Other"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=6), st.booleans())
def test_any_parameters_are_accepted_or_refused_with_an_api_error(
    params: dict[str, object], asynchronous: bool
) -> None:
    code = ""
    try:
        checked = check_ims(params, asynchronous=asynchronous)
    except ApiError as exc:
        code = exc.code
    else:
        assert (checked.content is None) != (checked.file_url == "")
    assert code or "FileContent" in params or "FileUrl" in params


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.binary(min_size=1, max_size=40).map(lambda tail: image_of(RED)[:200] + tail),
        st.sampled_from([b"GIF89a" + bytes(40), b"\x89PNG\r\n\x1a\n" + bytes(40)]),
    )
)
def test_any_bytes_are_judged_or_refused_with_an_api_error(data: bytes) -> None:
    code = "InvalidParameter (judged)"
    try:
        read_image(data, SYNC_LIMITS)
    except ApiError as exc:
        code = exc.code
    assert code.startswith("InvalidParameter")
