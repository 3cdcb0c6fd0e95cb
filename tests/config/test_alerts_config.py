"""Broken bus, TLS and policy config gives clear errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamguard.config import parse_config
from streamguard.core.errors import ConfigError


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        ("alerts/#", "wildcard"),
        ("a+b", "wildcard"),
        ("$SYS/x", "reserved"),
        ("/lead", "empty level"),
        ("a//b", "empty level"),
        ("a b", "white space"),
        ("", "must not be empty"),
    ],
)
def test_bad_topic_prefix(prefix: str, why: str) -> None:
    (problem,) = problems({"mqtt": {"host": "broker", "topic_prefix": prefix}})
    assert problem.startswith("mqtt.topic_prefix: ")
    assert why in problem


def test_tls_cert_without_key_and_missing_files(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x", encoding="utf-8")
    (problem,) = problems({"mqtt": {"host": "b", "tls": {"cert_file": str(cert)}}})
    assert problem == "mqtt.tls: key_file is required when cert_file is set"
    missing = tmp_path / "nope.pem"
    (problem,) = problems({"mqtt": {"host": "b", "tls": {"ca_file": str(missing)}}})
    assert problem == f"mqtt.tls.ca_file: file does not exist: {missing}"


def test_tls_is_verified_unless_insecure_is_asked_for(tmp_path: Path) -> None:
    config = parse_config({"mqtt": {"host": "b", "tls": {}}})
    assert config.mqtt is not None
    assert config.mqtt.tls is not None
    assert config.mqtt.tls.insecure is False
    assert config.mqtt.protocol == "auto"


def test_bad_policy_values_name_their_key() -> None:
    found = problems(
        {
            "profiles": {
                "kids": {
                    "labels": {"Abuse": {"medium": 90, "high": 50}},
                    "min_risk": "none",
                    "incident_quiet_seconds": 0,
                }
            }
        }
    )
    assert "profiles.kids.labels.Abuse: high (50) must be >= medium (90)" in found
    assert any(p.startswith("profiles.kids.min_risk: ") for p in found)
    assert any(p.startswith("profiles.kids.incident_quiet_seconds: ") for p in found)


def test_unknown_mqtt_key() -> None:
    assert problems({"mqtt": {"host": "b", "prefix": "x"}}) == ["mqtt.prefix: unknown key"]
