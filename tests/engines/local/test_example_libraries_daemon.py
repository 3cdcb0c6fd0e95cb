"""A profile's example libraries in the running daemon, with the real embedding model:
judged through the API, swapped on SIGHUP, a broken newly named file refused."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProcess

ENGINE_EXAMPLES = """
[[library]]
id = "scam"
name = "Scams"
label = "Fraud"
examples = [
    "send me your password and I will give you free coins",
    "click this link to claim your prize",
    "give me your login code to verify your account",
    "transfer money now to unlock your reward",
]

[[library]]
id = "chat"
name = "Everyday chat"
label = "Normal"
kind = "benign"
examples = [
    "what a great movie that was", "the ending of the film was sad", "I loved the soundtrack",
    "see you all tomorrow", "this game is so much fun", "the actors were brilliant",
]
"""
SPOILERS = """
[[library]]
id = "spoilers"
name = "Film spoilers"
label = "Spoiler"
examples = [
    "the hero dies at the end of the film",
    "spoiler: the captain was the killer all along",
    "in the last scene the main character is killed",
    "the twist is that his wife was dead the whole time",
]
"""
DRAGONS = SPOILERS[: SPOILERS.index("examples")] + (
    'examples = ["the dragon burns the whole castle down", '
    '"dragons rule the kingdom in the sequel", "a huge red dragon attacks the village"]\n'
)
SPOILER = "spoiler alert: the hero gets killed in the final scene"


def config(workdir: Path, *, broken_profile: bool = False) -> str:
    body = (
        '[engine]\ntype = "local"\nsemantic = true\n'
        f'example_libraries = ["{workdir / "engine.toml"}"]\n'
        f'[profiles.default]\n[profiles.films]\nexample_libraries = ["{workdir / "films.toml"}"]\n'
    )
    if broken_profile:
        body += f'[profiles.broken]\nexample_libraries = ["{workdir / "broken.toml"}"]\n'
    return body


def judged(daemon: DaemonProcess, profile: str, text: str = SPOILER) -> dict[str, Any]:
    body = {"items": [{"id": 1, "text": text}], "profile": profile}
    status, answer = daemon.request("POST", "/v1/moderate/text", body)
    assert status == 200, answer
    result: dict[str, Any] = answer["results"][0]
    return result


def test_a_profiles_examples_judge_its_text_and_sighup_swaps_them(tmp_path: Path) -> None:
    (tmp_path / "engine.toml").write_text(ENGINE_EXAMPLES)
    films = tmp_path / "films.toml"
    films.write_text(SPOILERS)
    daemon = DaemonProcess(tmp_path, config(tmp_path))
    try:
        daemon.start()
        assert judged(daemon, "default")["suggestion"] == "Pass"
        spoiler = judged(daemon, "films")
        assert (spoiler["suggestion"], spoiler["label"]) == ("Review", "Spoiler")
        assert spoiler["semantic"]["library_file"] == "films.toml"
        assert spoiler["semantic"]["examples"][0]["text"]
        # The user replaces the examples: after SIGHUP the new classifier judges.
        films.write_text(DRAGONS)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_message("STATUS=reloaded: 0 stream(s)", 60)
        assert judged(daemon, "films")["suggestion"] == "Pass"
        dragon = judged(daemon, "films", "a red dragon burns down the castle in the sequel")
        assert dragon["label"] == "Spoiler"
        # A new profile naming a broken file: the reload is refused, the old one stays.
        (tmp_path / "broken.toml").write_text('[[library]]\nid = "x"\n')
        daemon.write_config(config(tmp_path, broken_profile=True))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_message("STATUS=reload refused: 3 problem(s)", 60)
        assert "profiles.broken.example_libraries" in daemon.log()
        assert judged(daemon, "films", "a red dragon burns down the castle")["label"] == "Spoiler"
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    finally:
        daemon.close()
