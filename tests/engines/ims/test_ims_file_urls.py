"""Pictures sent to IMS as ``FileUrl`` (``[image_engine] send_as = "url"``): the engine's
listener serves each at a signed, expiring URL while it is judged, and the emulator
downloads it over real HTTP as IMS would (sync and async); what is judged is forgotten,
and a URL with a wrong signature, expired or forgotten is refused."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from streamguard.config import Config
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.emulator import AmsEmulator
from streamguard.emulator.ims_samples import picture
from streamguard.engines.image.factory import open_image_engine
from streamguard.engines.ims.engine import ImsImageEngine
from streamguard.engines.ims.file_urls import PictureUrls
from streamguard.engines.ims.inbox import ImsCallbackInbox
from streamguard.engines.ims.settings import ImsEngineSettings
from streamguard.tencentcloud.client import RetryPolicy
from streamguard.tencentcloud.ims_client import ImsClient
from tests.engines.ims.peers import BLUE, MAGENTA, RED, image_of, ims_peers
from tests.support.ams import CREDENTIALS, SECRET_ID, SECRET_KEY, no_sleep


@asynccontextmanager
async def by_url(
    settings: ImsEngineSettings,
) -> AsyncIterator[tuple[ImsImageEngine, AmsEmulator, PictureUrls]]:
    pictures = PictureUrls("")  # the listen address: the emulator is on loopback too
    async with (
        ims_peers() as (emulator, _),
        ImsClient(
            emulator.url, CREDENTIALS, retry=RetryPolicy(attempts=2), sleep=no_sleep()
        ) as client,
        ImsCallbackInbox(pictures=pictures) as inbox,
    ):
        yield ImsImageEngine(client, settings, inbox), emulator, pictures


async def test_sync_pictures_are_fetched_by_ims_from_their_signed_urls() -> None:
    async with by_url(ImsEngineSettings()) as (engine, emulator, pictures):
        judged = await engine.judge(
            [("room-1-f00001", picture(640, 360, RED)), ("room-1-f00002", picture(640, 360))]
        )
        uploaded = await engine.judge_jpeg("upload-1", image_of(MAGENTA))
        kept_after = len(pictures)
    assert [(v.outcome, v.suggestion, v.label) for v in [*judged, uploaded]] == [
        (Outcome.MODERATED, Suggestion.BLOCK, "Porn"),
        (Outcome.MODERATED, Suggestion.PASS, "Normal"),
        (Outcome.MODERATED, Suggestion.REVIEW, "Porn"),
    ]
    assert pictures.served == 3  # each downloaded by the emulator, none sent in the call
    assert emulator.ims.stats.handled["ImageModeration"] == 3
    assert kept_after == 0  # judged: no longer served


async def test_async_pictures_are_fetched_and_kept_until_the_callback() -> None:
    settings = ImsEngineSettings(mode="async", callback_deadline=30.0)
    async with by_url(settings) as (engine, emulator, pictures):
        [verdict] = await engine.judge([("room-1-f00003", picture(320, 240, BLUE))])
        await emulator.ims.drain()
        kept_after = len(pictures)
    assert (verdict.suggestion, verdict.label) == (Suggestion.BLOCK, "Terror")
    assert pictures.served == 1
    assert kept_after == 0


async def test_a_picture_url_is_served_only_signed_unexpired_and_while_kept() -> None:
    now = [1_000_000.0]
    pictures = PictureUrls("", ttl=60, clock=lambda: now[0])
    async with ImsCallbackInbox(pictures=pictures), aiohttp.ClientSession() as http:
        name, url = pictures.keep(b"jpeg bytes")

        async def status(of: str) -> int:
            async with http.get(of) as answer:
                return answer.status

        good = await status(url)
        forged = await status(url.replace("sig=", "sig=0"))
        bad_expiry = await status(url.replace("expires=", "expires=9"))
        now[0] += 61
        expired = await status(url)
        now[0] -= 61
        pictures.forget(name)
        forgotten = await status(url)
    assert (good, forged, bad_expiry, expired, forgotten) == (200, 403, 403, 403, 404)
    assert pictures.served == 1


def ims_config(**fields: Any) -> Config:
    return Config.model_validate({"image_engine": {"type": "ims", **fields}})


def test_send_as_url_needs_a_public_base_url() -> None:
    with pytest.raises(ValidationError, match="callback_public_url"):
        ims_config(send_as="url")


async def test_the_config_sends_pictures_by_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ims_peers() as (emulator, _), AsyncExitStack() as stack:
        config = ims_config(
            endpoint=emulator.url,
            send_as="url",
            callback_listen=f"127.0.0.1:{port}",
            callback_public_url=f"http://127.0.0.1:{port}",
        )
        engine = await open_image_engine(stack, config.image_engine)
        assert isinstance(engine, ImsImageEngine)
        [verdict] = await engine.judge([("room-1-f00004", picture(320, 240, RED))])
        served = engine.picture_urls
    assert (verdict.suggestion, verdict.label) == (Suggestion.BLOCK, "Porn")
    assert served is not None
    assert served.served == 1
    assert emulator.ims.stats.handled["ImageModeration"] == 1
