"""The AMS packages export what they say; the engine is an Engine; credentials are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

import streamguard.emulator
import streamguard.engines.ams
from streamguard.config.engine import AmsEngineConfig
from streamguard.core.errors import ConfigError
from streamguard.engines.ams import AmsEngine, credentials_from_config
from streamguard.engines.base import Engine
from streamguard.state.db import Database


@pytest.mark.parametrize("module", [streamguard.engines.ams, streamguard.emulator])
def test_exports_exist(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert hasattr(module, name), name


async def test_ams_engine_is_an_engine(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db:
        engine = AmsEngine(AmsEngineConfig(), db)
        assert isinstance(engine, Engine)
        assert (engine.name, engine.version) == ("ams", "2020-12-29")


def test_missing_credentials_name_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as caught:
        credentials_from_config(AmsEngineConfig())
    assert [p.path for p in caught.value.problems] == ["engine.secret_id", "engine.secret_key"]


def test_credentials_from_environment_and_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", " AKIDenv ")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "env-key")
    (tmp_path / "tencentcloud-secret-key").write_text("file-key\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = AmsEngineConfig()
    creds = credentials_from_config(config)
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDenv", "file-key", None)
    assert "file-key" not in repr(config) + repr(creds) + config.model_dump_json()
    explicit = AmsEngineConfig(secret_id=SecretStr("a"), secret_key=SecretStr("b"))
    assert credentials_from_config(explicit).secret_id == "a"
