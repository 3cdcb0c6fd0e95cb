"""``ImsImageEngine`` through the IMS emulator over real HTTP: frames (arrays) and JPEGs,
BizType per profile, sync and async (callbacks to the inbox), and pictures IMS cannot judge
becoming failed verdicts, never exceptions and never Pass."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import aiohttp

from streamguard.core.verdict import Outcome, Suggestion
from streamguard.emulator import AmsEmulator
from streamguard.emulator.ims_samples import picture
from streamguard.engines.ims.engine import ImsImageEngine, data_id_for
from streamguard.engines.ims.inbox import ImsCallbackInbox
from streamguard.engines.ims.settings import ImsEngineSettings
from streamguard.tencentcloud.client import RetryPolicy
from streamguard.tencentcloud.ims_client import ImsClient
from tests.engines.ims.peers import BLUE, MAGENTA, RED, YELLOW, image_of, ims_peers
from tests.support.ams import CREDENTIALS, no_sleep
from tests.support.waiting import eventually

SETTINGS = ImsEngineSettings(biz_type="frames_default", biz_types={"kids": "frames_kids"})


@asynccontextmanager
async def engine_on(
    settings: ImsEngineSettings = SETTINGS,
) -> AsyncIterator[tuple[ImsImageEngine, AmsEmulator, ImsCallbackInbox]]:
    async with (
        ims_peers() as (emulator, _),
        ImsClient(
            emulator.url, CREDENTIALS, retry=RetryPolicy(attempts=2), sleep=no_sleep()
        ) as client,
        ImsCallbackInbox() as inbox,
    ):
        yield ImsImageEngine(client, settings, inbox), emulator, inbox


async def test_frames_and_files_are_judged_under_their_profiles_biz_type() -> None:
    frames = [
        ("room-1/f1", picture(640, 360, RED)),
        ("room-1/f2", picture(640, 360)),
        ("room-1/f3", picture(641, 361, YELLOW)),  # odd sides are fine
    ]
    async with engine_on() as (engine, emulator, _):
        judged = await engine.judge(frames, profile="kids")
        by_file = await engine.judge_jpeg("upload-1", image_of(MAGENTA))
        by_default = await engine.judge([("f4", picture(320, 240, BLUE))], profile="unknown")
        calls = emulator.ims.stats.handled["ImageModeration"]
    red, clean, ad = judged
    assert (red.outcome, red.suggestion, red.label, red.sub_label, red.score) == (
        Outcome.MODERATED,
        Suggestion.BLOCK,
        "Porn",
        "SexBehavior",
        95,
    )
    assert red.segment_id == "room-1/f1"
    assert red.hit
    assert red.details["biz_type"] == "frames_kids"
    assert red.details["data_id"] == data_id_for("room-1/f1")
    assert (clean.suggestion, clean.label, clean.hit) == (Suggestion.PASS, "Normal", False)
    assert (ad.suggestion, ad.label, ad.details["objects"]) == (Suggestion.REVIEW, "Ad", ["QRCODE"])
    assert (by_file.suggestion, by_file.label) == (Suggestion.REVIEW, "Porn")
    assert by_file.details["biz_type"] == "frames_default"
    assert (by_default[0].label, by_default[0].details["biz_type"]) == ("Terror", "frames_default")
    assert calls == 5
    assert engine.judged == 5


async def test_pictures_ims_cannot_judge_fail_with_the_reason() -> None:
    async with engine_on() as (engine, emulator, _):
        tiny, grey_bytes = await engine.judge(
            [("tiny", picture(30, 30, RED)), ("text", b"a text file, not a picture")]
        )
        emulator.ims.faults.fail_next = deque(["UnauthorizedOperation.Unauthorized"])
        [refused] = await engine.judge([("f", picture(320, 240, RED))])
        emulator.ims.faults.fail_next = deque(["ResourceUnavailable.ModelCallFailed"] * 2)
        [trouble] = await engine.judge([("g", picture(320, 240, RED))])
        [empty] = await engine.judge([("h", picture(1, 1))])
    assert all(
        v.outcome is Outcome.FAILED and v.suggestion is Suggestion.PASS and not v.hit
        for v in (tiny, grey_bytes, refused, trouble, empty)
    )
    assert tiny.reason == "IMS cannot judge this picture: InvalidParameter.ImageSizeTooSmall"
    assert grey_bytes.reason.endswith("InvalidParameterValue.InvalidImageContent")
    assert refused.reason == "IMS refused the account: UnauthorizedOperation.Unauthorized"
    assert trouble.reason == "IMS call failed: ResourceUnavailable.ModelCallFailed"
    assert empty.reason.startswith("not sent to IMS")
    assert engine.failures["Encoding"] == 1


async def test_async_mode_judges_by_callback_and_drops_duplicates() -> None:
    settings = replace(SETTINGS, mode="async", callback_deadline=30.0)
    async with engine_on(settings) as (engine, emulator, inbox):
        emulator.ims.faults.duplicate_callbacks = True
        emulator.ims.faults.wrapped_callbacks = True
        judged = await engine.judge(
            [("a", picture(320, 240, RED)), ("b", picture(320, 240)), ("a", image_of(BLUE))],
            profile="kids",
        )
        await emulator.ims.drain()
        accepted = emulator.ims.stats.handled["CreateImageModerationAsyncTask"]
    assert [(v.segment_id, v.suggestion, v.label) for v in judged] == [
        ("a", Suggestion.BLOCK, "Porn"),
        ("b", Suggestion.PASS, "Normal"),
        ("a", Suggestion.BLOCK, "Terror"),
    ]
    assert judged[0].details["biz_type"] == "frames_kids"
    assert accepted == 3
    assert (inbox.received, inbox.dropped) == (6, 3)


async def test_async_mode_gives_up_on_a_callback_that_never_comes() -> None:
    settings = replace(SETTINGS, mode="async", callback_deadline=0.3)
    async with engine_on(settings) as (engine, emulator, _inbox):
        emulator.ims.options = replace(emulator.ims.options, callback_delay=30.0)
        [late] = await engine.judge([("slow", picture(320, 240, RED))])
    assert late.outcome is Outcome.FAILED
    assert late.reason == "IMS did not call back within 0.3 s"
    assert engine.failures["Timeout"] == 1


async def test_a_picture_waiting_when_the_inbox_closes_fails_with_the_reason() -> None:
    settings = replace(SETTINGS, mode="async", callback_deadline=60.0)
    async with engine_on(settings) as (engine, emulator, inbox):
        emulator.ims.options = replace(emulator.ims.options, callback_delay=60.0)
        judging = asyncio.create_task(engine.judge([("p", picture(320, 240, RED))]), name="judge")
        await eventually(lambda: emulator.ims.stats.handled["CreateImageModerationAsyncTask"] > 0)
        await inbox.__aexit__(None, None, None)
        async with asyncio.timeout(30):
            [verdict] = await judging
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reason == "no IMS answer: the IMS callback inbox closed"


async def test_the_inbox_refuses_callbacks_without_its_token() -> None:
    async with ImsCallbackInbox() as inbox, aiohttp.ClientSession() as session:
        waiting = inbox.expect("x")
        forged = inbox.url.replace("token=", "token=forged")
        async with session.post(forged, json={"DataId": "x", "Suggestion": "Pass"}) as answer:
            refused = answer.status
        async with session.post(inbox.url, json={"DataId": "x", "Suggestion": "Block"}) as ok:
            accepted = ok.status
        result = await asyncio.wait_for(waiting, 10)
    assert (refused, accepted, result.suggestion) == (403, 200, "Block")


def test_data_ids_fit_ims_and_never_meet() -> None:
    assert data_id_for("room-1_f@2#3") == "room-1_f@2#3"
    long = data_id_for("r" * 80)
    odd = data_id_for("room/1 frame:2")
    assert len(long) <= 64
    assert odd.startswith("room_1_frame_2-")
    assert data_id_for("room/1") != data_id_for("room:1")
