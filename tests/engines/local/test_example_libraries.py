"""Per-profile example libraries: limits, one classifier per profile, reload (stand-in embedder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamguard.cli.check_config import runtime_problems
from streamguard.config import load_config
from streamguard.config.engine import LocalEngineConfig
from streamguard.config.policy import LabelRule, ProfileConfig
from streamguard.core.errors import ConfigError
from streamguard.core.verdict import Suggestion
from streamguard.engines.local.examples import (
    MAX_PROFILE_EXAMPLES,
    MAX_PROFILE_LIBRARIES,
    default_examples_path,
)
from streamguard.engines.local.moderator import TextModerator
from tests.engines.local.words import EXAMPLES_TOML, WordEmbedder

SPOILERS = """
[[library]]
id = "spoilers"
name = "Film spoilers"
label = "Spoiler"
sub_label = "Ending"
score = 70
examples = [
    "the hero dies at the end of the film",
    "spoiler the captain was the killer all along",
    "in the last scene the hero dies",
]

[[library]]
id = "film-talk"
name = "Talk about films"
label = "Normal"
kind = "benign"
examples = ["what a great film", "the popcorn was good", "the cinema was full tonight"]
"""
SPOILER = "the hero dies in the last scene of the film"


def library(n: int, examples: list[str], kind: str = "flag") -> str:
    quoted = ", ".join(f'"{e}"' for e in examples)
    head = f'[[library]]\nid = "lib{n}"\nname = "L{n}"\nlabel = "X"\nkind = "{kind}"\n'
    return f"{head}examples = [{quoted}]\n"


@pytest.fixture
def engine_file(tmp_path: Path) -> Path:
    path = tmp_path / "engine-examples.toml"
    path.write_text(EXAMPLES_TOML)
    return path


@pytest.fixture
def spoilers(tmp_path: Path) -> Path:
    path = tmp_path / "spoilers.toml"
    path.write_text(SPOILERS)
    return path


def moderator_for(engine_file: Path) -> TextModerator:
    config = LocalEngineConfig(semantic=True, example_libraries=[engine_file])
    return TextModerator(config, embedder=WordEmbedder())


def test_a_users_examples_change_the_verdict_for_that_profile_only(
    engine_file: Path, spoilers: Path
) -> None:
    moderator = moderator_for(engine_file)
    profiles = {"default": ProfileConfig(), "films": ProfileConfig(example_libraries=[spoilers])}
    moderator.load(profiles)
    (plain,) = moderator.judge_many([SPOILER], profiles["default"])
    (films,) = moderator.judge_many([SPOILER], profiles["films"])
    assert plain.suggestion is Suggestion.PASS
    assert (films.suggestion, films.label, films.sub_label) == (
        Suggestion.REVIEW,
        "Spoiler",
        "Ending",
    )
    # The verdict names the library, its file and the nearest examples.
    semantic = films.to_json()["semantic"]
    assert (semantic["library_id"], semantic["library_file"]) == ("spoilers", "spoilers.toml")
    assert semantic["examples"][0]["text"] == "in the last scene the hero dies"
    # The engine's examples still judge under the profile: they were added to, not replaced.
    (threat,) = moderator.judge_many(["i am outside your house tonight"], profiles["films"])
    assert threat.semantic is not None
    assert threat.semantic.library.id == "threat"


def test_replacing_the_default_examples_judges_with_the_profiles_alone(
    engine_file: Path, spoilers: Path
) -> None:
    moderator = moderator_for(engine_file)
    only = ProfileConfig(example_libraries=[spoilers], replace_default_examples=True)
    moderator.load({"only": only})
    threat, spoiler = moderator.judge_many(["i am outside your house tonight", SPOILER], only)
    assert (threat.hit, spoiler.label) == (False, "Spoiler")
    (kept,) = moderator.judge_many(["i am outside your house tonight"])
    assert kept.label == "Abuse"  # other profiles (and segments) keep the engine's examples


def test_profiles_with_the_same_examples_share_one_classifier(
    engine_file: Path, spoilers: Path
) -> None:
    moderator = moderator_for(engine_file)
    embedder = moderator.embedder
    assert isinstance(embedder, WordEmbedder)
    assert moderator.profiles is not None
    same = {n: ProfileConfig(example_libraries=[spoilers]) for n in ("a", "b")}
    moderator.load({**same, "default": ProfileConfig()})
    assert embedder.embedded == 12 + 6  # every example once, shared ones too
    assert moderator.profiles.index(same["a"]) is moderator.profiles.index(same["b"])
    assert moderator.profiles.index(same["a"]) is not moderator.profiles.index(None)
    assert len(moderator.profiles.fit_seconds) == 2


def test_a_reload_swaps_the_profiles_classifier_and_a_broken_one_keeps_it(
    engine_file: Path, spoilers: Path
) -> None:
    moderator = moderator_for(engine_file)
    profiles = {"films": ProfileConfig(example_libraries=[spoilers])}
    moderator.load(profiles)
    assert moderator.judge_many([SPOILER], profiles["films"])[0].label == "Spoiler"
    # The user's examples change: after the reload the old ones no longer count.
    spoilers.write_text(
        SPOILERS.replace("the hero dies at the end of the film", "a dragon wins")
        .replace("spoiler the captain was the killer all along", "dragons burn castles")
        .replace("in the last scene the hero dies", "the dragon king rules")
    )
    moderator.reload_examples(profiles)
    assert moderator.judge_many([SPOILER], profiles["films"])[0].suggestion is Suggestion.PASS
    (dragon,) = moderator.judge_many(["a dragon wins and burns castles"], profiles["films"])
    assert dragon.label == "Spoiler"
    # A broken edit keeps the working examples, and says why.
    spoilers.write_text(SPOILERS.replace("examples = [", "examples = [42, "))
    moderator.reload_examples(profiles)
    assert moderator.judge_many(["a dragon wins and burns castles"], profiles["films"])[
        0
    ].label == ("Spoiler")
    (error,) = moderator.errors
    assert "examples[0]" in str(error)


def test_a_profile_newly_naming_a_broken_file_is_refused_naming_the_key(
    engine_file: Path, spoilers: Path, tmp_path: Path
) -> None:
    moderator = moderator_for(engine_file)
    profiles = {"films": ProfileConfig(example_libraries=[spoilers])}
    moderator.load(profiles)
    broken = tmp_path / "broken.toml"
    broken.write_text(library(1, ["x" * 301]))
    with pytest.raises(ConfigError) as refused:
        moderator.reload_examples({**profiles, "new": ProfileConfig(example_libraries=[broken])})
    (problem,) = refused.value.problems
    assert problem.path.startswith("profiles.new.example_libraries: ")
    assert "examples[0]" in problem.path
    assert "301 characters; at most 300" in problem.reason
    assert moderator.judge_many([SPOILER], profiles["films"])[0].label == "Spoiler"


@pytest.mark.parametrize(
    ("libraries", "complaint"),
    [
        ([library(n, ["a b c"]) for n in range(MAX_PROFILE_LIBRARIES + 1)], "at most 20"),
        (
            [library(n, [f"e{n} {i}" for i in range(500)]) for n in range(5)],
            f"2500 examples in all; at most {MAX_PROFILE_EXAMPLES}",
        ),
        ([library(1, [f"e {i}" for i in range(501)])], "501 examples; at most 500"),
    ],
)
def test_a_profiles_files_are_held_to_the_limits(
    engine_file: Path, tmp_path: Path, libraries: list[str], complaint: str
) -> None:
    path = tmp_path / "big.toml"
    path.write_text("\n".join(libraries))
    moderator = moderator_for(engine_file)
    with pytest.raises(ConfigError, match=complaint) as refused:
        moderator.load({"big": ProfileConfig(example_libraries=[path])})
    assert all(p.path.startswith("profiles.big.example_libraries") for p in refused.value.problems)


def test_replacing_the_default_examples_needs_files_and_files_are_limited(tmp_path: Path) -> None:
    path = tmp_path / "streamguard.toml"
    path.write_text("[profiles.vip]\nreplace_default_examples = true\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    (problem,) = refused.value.problems
    assert "profiles.vip" in problem.path
    assert "needs example_libraries" in problem.reason
    with pytest.raises(ValidationError, match="at most 20 items"):
        ProfileConfig(example_libraries=[tmp_path / f"{n}.toml" for n in range(21)])


def test_flag_examples_without_benign_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "flags.toml"
    path.write_text(library(1, ["a b c"]))
    only = ProfileConfig(example_libraries=[path], replace_default_examples=True)
    moderator = moderator_for(default_examples_path())
    with pytest.raises(ConfigError, match="no benign library") as refused:
        moderator.load({"only": only})
    assert refused.value.problems[0].path.startswith("profiles.only.example_libraries")


def test_a_profile_that_switches_off_every_flag_label_embeds_nothing(
    engine_file: Path, spoilers: Path
) -> None:
    moderator = moderator_for(engine_file)
    embedder = moderator.embedder
    assert isinstance(embedder, WordEmbedder)
    off = LabelRule(enabled=False)
    quiet = ProfileConfig(
        example_libraries=[spoilers],
        labels={"Abuse": off, "Illegal": off, "Spoiler": off},
    )
    moderator.load({"quiet": quiet})
    before = embedder.embedded
    (judgement,) = moderator.judge_many([SPOILER], quiet)
    assert (judgement.hit, embedder.embedded) == (False, before)
    assert moderator.counts["labels switched off"] == 1
    # One label left on: the text is embedded and judged.
    on = quiet.model_copy(update={"labels": {"Abuse": off, "Illegal": off}})
    (judgement,) = moderator.judge_many([SPOILER], on)
    assert (judgement.label, embedder.embedded) == ("Spoiler", before + 1)


def test_check_config_names_a_profiles_broken_example_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(library(1, ["x" * 301]))
    path = tmp_path / "streamguard.toml"
    body = f'[profiles.vip]\nexample_libraries = ["{broken}"]\n'
    path.write_text('[engine]\ntype = "local"\nsemantic = true\n' + body)
    (problem,) = runtime_problems(load_config(path))
    assert problem.path.startswith(f"profiles.vip.example_libraries: {broken}: library[0]")
    assert "301 characters; at most 300" in problem.reason
    path.write_text('[engine]\ntype = "local"\n' + body)  # no semantic layer: not read
    assert runtime_problems(load_config(path)) == []
