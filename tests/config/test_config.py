"""Config: the shipped example is complete and valid; broken configs name every bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamguard.config import load_config, parse_config
from streamguard.config.policy import ProfileConfig
from streamguard.config.reference import render_reference
from streamguard.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "streamguard.example.toml"


def test_example_config_is_generated_from_the_models() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == render_reference(), (
        "regenerate: python -m streamguard.config.reference > config/streamguard.example.toml"
    )


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.streams[0].id == "lobby"


BROKEN = {
    "unknown key": ("[ingest]\nsegment_secs = 30\n", "ingest.segment_secs: unknown key"),
    "bad segment length": ("[ingest]\nsegment_seconds = 20\n", "ingest.segment_seconds:"),
    "bad stream id": (
        '[[streams]]\nid = "a b"\nurl = "x.wav"\n',
        "streams[0].id: String should match pattern",
    ),
    "missing url": ('[[streams]]\nid = "a"\n', "streams[0].url: required key is missing"),
    "unknown profile": (
        '[[streams]]\nid = "a"\nurl = "x.wav"\nprofile = "kids"\n',
        "streams: [0].profile 'kids' of stream 'a' is not defined in profiles",
    ),
    "duplicate stream": (
        '[[streams]]\nid = "a"\nurl = "x"\n[[streams]]\nid = "a"\nurl = "y"\n',
        "[1].id 'a' is used by another stream",
    ),
    "unknown engine": (
        '[engine]\ntype = "magic"\n',
        'engine: type is required and must be "local"',
    ),
    "engine without type": (
        '[engine]\nmodel = "tiny.en"\n',
        'engine: type is required and must be "local" (the embedded engine) or "ams"',
    ),
    "webhook without mqtt": (
        '[[webhooks]]\nname = "ops"\nurl = "http://127.0.0.1:9/"\n',
        "webhooks[0]: webhook 'ops' has no secret: put it in",
    ),
    "webhook secret in the file": (
        '[mqtt]\nhost = "x"\n[[webhooks]]\nname = "ops"\nurl = "http://x/"\nsecret = "hunter2"\n',
        "secret is a secret and is not read from the config file",
    ),
    "engine key of the other type": (
        '[engine]\ntype = "local"\nendpoint = "http://x"\n',
        "engine.endpoint: unknown key",
    ),
    "secret in the file": (
        '[engine]\ntype = "ams"\nsecret_key = "hunter2"\n',
        "secret_key is a secret and is not read from the config file",
    ),
    "backoff out of order": (
        "[ingest.backoff]\ninitial = 10\nmaximum = 1\n",
        "ingest.backoff: maximum must be >= initial",
    ),
    "mqtt without host": ("[mqtt]\nport = 1883\n", "mqtt.host: required key is missing"),
    "not toml": ("[ingest\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_config_names_the_key(tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "streamguard", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert expected in result.stderr
    assert "hunter2" not in result.stderr


def test_every_problem_is_reported_not_just_the_first() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"ingest": {"open_timeout": -1, "read_timeout": 0, "what": 1}})
    paths = sorted(p.path for p in caught.value.problems)
    assert paths == ["ingest.open_timeout", "ingest.read_timeout", "ingest.what"]


def test_secrets_come_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tencentcloud-secret-key").write_text("from-credentials\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "from-env")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDexample")
    config = parse_config({"engine": {"type": "ams"}})
    assert config.engine.type == "ams"
    assert config.engine.secret_key is not None
    assert config.engine.secret_key.get_secret_value() == "from-credentials"
    assert config.engine.secret_id is not None
    assert config.engine.secret_id.get_secret_value() == "AKIDexample"
    assert "from-credentials" not in repr(config)


def test_check_config_accepts_the_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamguard", "check-config", "-c", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_adding_a_profile_keeps_default_and_defining_default_replaces_it() -> None:
    added = parse_config({"profiles": {"kids": {"min_risk": "low"}}})
    assert set(added.profiles) == {"default", "kids"}
    assert added.profiles["default"] == ProfileConfig()
    changed = parse_config({"profiles": {"default": {"min_risk": "high"}}})
    assert changed.profiles["default"].min_risk == "high"
    streams = parse_config({"profiles": {"kids": {}}, "streams": [{"id": "a", "url": "x.wav"}]})
    assert streams.streams[0].profile == "default"
    assert streams.streams[0].room == "a"  # no room: the room of its id
