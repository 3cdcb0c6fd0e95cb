"""IMS as the image engine: our client (TC3-signed for ``ims``) and the engine adapter
against the IMS emulator over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from streamguard.cli.check_config import runtime_problems
from streamguard.config import Config
from streamguard.config.image import ImsImageConfig
from streamguard.core.errors import ConfigError
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.emulator.ims import ImsEmulator
from streamguard.engines.image.factory import open_image_engine
from streamguard.engines.image.ims import ImsImageEngine, verdict_from_ims
from streamguard.tencentcloud.client import RetryPolicy
from streamguard.tencentcloud.ims import ImsClient
from streamguard.tencentcloud.signing import Credentials
from streamguard.testing.images import HIT_SCORE, MarkerImageEngine, marked
from streamguard.testing.video import pattern

KEYS = Credentials("AKIDimstest", "ims-test-secret")


@pytest.fixture
async def emulator() -> AsyncIterator[ImsEmulator]:
    async with ImsEmulator(MarkerImageEngine(), keys={KEYS.secret_id: KEYS.secret_key}) as ims:
        yield ims


def client(url: str, keys: Credentials = KEYS) -> ImsClient:
    return ImsClient(url, keys, region="ap-guangzhou", retry=RetryPolicy(attempts=2, initial=0.01))


async def test_frames_are_judged_by_ims_with_their_ids(emulator: ImsEmulator) -> None:
    async with ImsImageEngine(client(emulator.url), biz_type="live_rooms") as engine:
        verdicts = await engine.judge(
            [
                ("room-1-20260102030405-f00001", marked(240, 320)),
                ("room-1-20260102030405-f00002", pattern(5, 320, 240)),
            ]
        )
    hit, clean = verdicts
    assert (hit.outcome, hit.suggestion, hit.label, hit.score, hit.hit) == (
        Outcome.MODERATED,
        Suggestion.BLOCK,
        "Porn",
        HIT_SCORE,
        True,
    )
    assert hit.details == {"scores": {"Porn": HIT_SCORE}, "biz_type": "live_rooms"}
    assert hit.task_id  # IMS's RequestId
    assert (clean.suggestion, clean.label, clean.hit) == (Suggestion.PASS, "Normal", False)
    assert [v.segment_id for v in verdicts] == [
        "room-1-20260102030405-f00001",
        "room-1-20260102030405-f00002",
    ]
    fake = emulator.engine
    assert isinstance(fake, MarkerImageEngine)
    assert sorted(fake.judged) == ["room-1-20260102030405-f00001", "room-1-20260102030405-f00002"]
    assert engine.calls == 2


async def test_a_picture_ims_refuses_is_a_failed_verdict_with_the_code(
    emulator: ImsEmulator,
) -> None:
    async with ImsImageEngine(client(emulator.url)) as engine:
        [small] = await engine.judge([("tiny", pattern(1, 40, 40))])
    assert small.outcome is Outcome.FAILED
    assert "InvalidParameter.ImageSizeTooSmall" in small.reason
    wrong = Credentials(KEYS.secret_id, "wrong")
    async with ImsImageEngine(client(emulator.url, wrong)) as engine:
        [refused] = await engine.judge([("f1", marked())])
    assert refused.outcome is Outcome.FAILED
    assert "AuthFailure.SignatureFailure" in refused.reason


def test_an_answer_with_null_arrays_or_an_unknown_suggestion_is_read() -> None:
    bare = verdict_from_ims(
        "p", {"Suggestion": "Pass", "Label": "Normal", "LabelResults": None}, "v"
    )
    assert (bare.suggestion, bare.hit, bare.details["scores"]) == (Suggestion.PASS, False, {})
    odd = verdict_from_ims("p", {"Suggestion": "Maybe", "Label": "Ad", "Score": 70}, "v")
    assert (odd.suggestion, odd.hit, odd.label, odd.score) == (Suggestion.REVIEW, True, "Ad", 70)


async def test_the_config_chooses_ims_and_asks_for_its_credentials(
    emulator: ImsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError) as missing:
        async with AsyncExitStack() as stack:
            await open_image_engine(stack, ImsImageConfig(endpoint=emulator.url))
    assert {p.path for p in missing.value.problems} == {
        "image_engine.secret_id",
        "image_engine.secret_key",
    }
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", KEYS.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", KEYS.secret_key)
    config = Config.model_validate({"image_engine": {"type": "ims", "endpoint": emulator.url}})
    async with AsyncExitStack() as stack:
        engine = await open_image_engine(stack, config.image_engine)
        [verdict] = await engine.judge([("f1", marked())])
    assert isinstance(engine, ImsImageEngine)
    assert verdict.suggestion is Suggestion.BLOCK


def test_check_config_reports_missing_ims_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CREDENTIALS_DIRECTORY", "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = Config.model_validate({"image_engine": {"type": "ims"}})
    paths = {problem.path for problem in runtime_problems(config)}
    assert {"image_engine.secret_id", "image_engine.secret_key"} <= paths


async def test_the_profile_biz_type_wins_over_the_engine_one(emulator: ImsEmulator) -> None:
    async with ImsImageEngine(client(emulator.url), biz_type="engine_wide") as engine:
        [own] = await engine.judge([("f1", marked())])
        [profiled] = await engine.judge([("f2", marked())], biz_type="vip_rooms")
    assert (own.details["biz_type"], profiled.details["biz_type"]) == ("engine_wide", "vip_rooms")
