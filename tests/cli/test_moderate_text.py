"""``streamguard moderate-text``: one JSON line per text, from arguments or stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

COMMAND = [sys.executable, "-m", "streamguard", "moderate-text"]
KEYWORDS_ONLY = """
[engine]
type = "local"
semantic = false

[profiles.default]

[profiles.lenient]
ignored_words = ["idiot"]
"""


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], input=stdin, capture_output=True, text=True, check=False, timeout=300
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "streamguard.toml"
    path.write_text(KEYWORDS_ONLY)
    return path


def test_texts_as_arguments_are_answered_in_order(config: Path) -> None:
    result = _run("-c", str(config), "you idiot", "nice stream", "I will kill you")
    assert result.returncode == 0, result.stderr
    answers = _lines(result.stdout)
    assert [a["text"] for a in answers] == ["you idiot", "nice stream", "I will kill you"]
    assert [a["suggestion"] for a in answers] == ["Review", "Pass", "Block"]
    assert answers[0]["keywords"] == [
        {
            "keyword": "idiot",
            "library_id": "en-insults",
            "label": "Abuse",
            "score": 70,
            "text": "idiot",
        }
    ]
    assert (answers[0]["label"], answers[0]["score"], answers[0]["signals"]) == (
        "Abuse",
        70,
        ["keyword"],
    )
    assert answers[1]["semantic"] is None


def test_texts_on_stdin_one_per_line_blank_lines_skipped(config: Path) -> None:
    result = _run("-c", str(config), stdin="you idiot\n\nhello there\r\n")
    assert result.returncode == 0, result.stderr
    assert [a["text"] for a in _lines(result.stdout)] == ["you idiot", "hello there"]


def test_a_profile_drops_its_ignored_words_and_an_unknown_one_is_refused(config: Path) -> None:
    lenient = _lines(_run("-c", str(config), "--profile", "lenient", "you idiot").stdout)
    assert lenient[0]["suggestion"] == "Pass"
    refused = _run("-c", str(config), "--profile", "nope", "you idiot")
    assert refused.returncode == 2
    assert "--profile 'nope' is not one of default, lenient" in refused.stderr


@pytest.mark.slow
def test_the_semantic_layer_flags_a_threat_without_a_violent_word(tmp_path: Path) -> None:
    semantic = tmp_path / "semantic.toml"
    semantic.write_text('[engine]\ntype = "local"\nsemantic = true\n', encoding="utf-8")
    result = _run(
        "-c", str(semantic), "I know which school your kids go to, see you there.", "Good game!"
    )
    assert result.returncode == 0, result.stderr
    threat, chat = _lines(result.stdout)
    assert (threat["suggestion"], threat["label"], threat["signals"]) == (
        "Review",
        "Abuse",
        ["semantic"],
    )
    assert threat["semantic"]["sub_label"] == "Threat"
    assert len(threat["semantic"]["examples"]) == 3
    assert chat["suggestion"] == "Pass"
