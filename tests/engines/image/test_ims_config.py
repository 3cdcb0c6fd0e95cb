"""``[image_engine] type = "ims"``: the image-engine factory opens
``streamguard.engines.ims.ImsImageEngine`` (sync, or async with its callback inbox) against
the emulator (IMS on the AMS port) over real HTTP on loopback; the policy profile's
``image_biz_type`` wins over the engine's; missing credentials are named."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pydantic import ValidationError

from streamguard.cli.check_config import runtime_problems
from streamguard.config import Config
from streamguard.config.image import ImsImageConfig
from streamguard.core.errors import ConfigError
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.emulator import AmsEmulator
from streamguard.emulator.ims_samples import picture
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.factory import open_image_engine
from streamguard.engines.ims.engine import ImsImageEngine
from tests.engines.ims.peers import RED, ims_peers
from tests.support.ams import SECRET_ID, SECRET_KEY

_CREDENTIAL_VARS = ("CREDENTIALS_DIRECTORY", "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY")


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AmsEmulator]:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    async with ims_peers() as (ams, _):
        yield ams


def ims_config(**fields: Any) -> Config:
    return Config.model_validate({"image_engine": {"type": "ims", **fields}})


async def test_the_config_opens_the_ims_engine_and_the_profile_biz_type_wins(
    emulator: AmsEmulator,
) -> None:
    config = ims_config(endpoint=emulator.url, biz_type="engine_wide")
    async with AsyncExitStack() as stack:
        engine = await open_image_engine(stack, config.image_engine)
        assert isinstance(engine, ImsImageEngine)
        assert isinstance(engine, ImageEngine)
        frame = picture(320, 240, RED)
        [own] = await engine.judge([("room-1-f00001", frame)])
        [profiled] = await engine.judge([("room-1-f00002", frame)], biz_type="vip_rooms")
        [clean] = await engine.judge([("room-1-f00003", picture(320, 240))])
    assert (own.outcome, own.suggestion, own.label, own.hit) == (
        Outcome.MODERATED,
        Suggestion.BLOCK,
        "Porn",
        True,
    )
    assert (own.details["biz_type"], profiled.details["biz_type"]) == ("engine_wide", "vip_rooms")
    assert (clean.suggestion, clean.label, clean.hit) == (Suggestion.PASS, "Normal", False)
    assert emulator.ims.stats.handled["ImageModeration"] == 3


async def test_async_mode_is_judged_by_callback_to_the_configured_inbox(
    emulator: AmsEmulator,
) -> None:
    port = _free_port()
    config = ims_config(
        endpoint=emulator.url,
        mode="async",
        callback_listen=f"127.0.0.1:{port}",
        callback_public_url=f"http://127.0.0.1:{port}",
        callback_deadline=30,
    )
    async with AsyncExitStack() as stack:
        engine = await open_image_engine(stack, config.image_engine)
        [verdict] = await engine.judge([("room-1-f00001", picture(320, 240, RED))])
    assert (verdict.outcome, verdict.suggestion, verdict.label) == (
        Outcome.MODERATED,
        Suggestion.BLOCK,
        "Porn",
    )
    assert emulator.ims.stats.handled["CreateImageModerationAsyncTask"] == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_async_mode_needs_a_public_callback_url() -> None:
    with pytest.raises(ValidationError, match="callback_public_url"):
        ims_config(mode="async")


async def test_missing_credentials_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as missing:
        async with AsyncExitStack() as stack:
            await open_image_engine(stack, ImsImageConfig(endpoint="http://127.0.0.1:9"))
    assert {p.path for p in missing.value.problems} == {
        "image_engine.secret_id",
        "image_engine.secret_key",
    }
    paths = {problem.path for problem in runtime_problems(ims_config())}
    assert {"image_engine.secret_id", "image_engine.secret_key"} <= paths
