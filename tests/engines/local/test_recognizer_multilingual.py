"""Whisper base (multilingual) from its PyPI packages: assembled, checked, and heard with.

Real models on real generated speech: tiny.en (shipped) and whisper base (the ``whisper-base``
extra), German and French spoken by espeak-ng. Non-English speech that tiny.en cannot follow
is heard again by whisper base when it is configured, transcribed in its language and
reported as such; without it, it is reported as not followed.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.errors import EngineError
from streamguard.core.verdict import Suggestion, Verdict
from streamguard.engines.local import LocalEngine, Recognizer
from streamguard.engines.local import models as whisper_models
from streamguard.engines.local.assess import UNINTELLIGIBLE
from streamguard.engines.local.models import (
    WHISPER_BASE_FILES,
    WHISPER_BASE_SHA256,
    assemble_whisper_base,
)
from streamguard.engines.local.recognizer import check_model_digest
from tests.support.speech import SpeechCache, segment_of

pytestmark = pytest.mark.slow

GERMAN_THREAT = ("espeak:de", "Ich werde dich heute Abend finden und umbringen, du Idiot.")
FRENCH = ("espeak:fr", "Nous allons au marché demain matin avec mes parents.")
ENGLISH = ("espeak:en-us", "We are planning a picnic by the river on Sunday afternoon.")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_whisper_base(tmp_path_factory.mktemp("models") / "whisper-base")


@pytest.fixture(scope="module")
def base(base_dir: Path) -> Recognizer:
    """Whisper base, loaded once for this file, its weights checked against the digest."""
    model = Recognizer(str(base_dir), sha256=WHISPER_BASE_SHA256)
    model.load()
    return model


@pytest.fixture(scope="module")
def tiny() -> Recognizer:
    model = Recognizer()
    model.load()
    return model


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechCache:
    return SpeechCache(tmp_path_factory.mktemp("speech"))


async def _judge(engine: LocalEngine, speech: SpeechCache, voice: str, text: str) -> Verdict:
    return (await _judge_all(engine, speech, (voice, text)))[0]


async def _judge_all(
    engine: LocalEngine, speech: SpeechCache, *utterances: tuple[str, str]
) -> list[Verdict]:
    """Each utterance in its own stream, judged by ``engine`` (closed after)."""
    async with engine:
        return [
            await engine.moderate(segment_of(speech(text, voice), seq=n))
            for n, (voice, text) in enumerate(utterances)
        ]


def test_whisper_base_is_assembled_from_its_two_packages_with_every_digest(
    base_dir: Path, base: Recognizer
) -> None:
    assert sorted(p.name for p in base_dir.iterdir()) == sorted(WHISPER_BASE_FILES)
    for name, digest in WHISPER_BASE_FILES.items():
        assert _sha256(base_dir / name) == digest, name
    check_model_digest(str(base_dir), WHISPER_BASE_SHA256)
    assert base.multilingual
    assert "whisper-base" in base.version


def test_assembling_again_keeps_a_complete_copy_and_repairs_a_damaged_one(
    base_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(base_dir, copy)
    weights = copy / "model.bin"
    kept = weights.stat().st_mtime_ns
    assert assemble_whisper_base(copy) == copy
    assert weights.stat().st_mtime_ns == kept
    # A damaged file (an interrupted copy, a changed byte) is joined again from the packages.
    (copy / "vocabulary.txt").write_text("damaged")
    with weights.open("r+b") as file:
        file.seek(1000)
        file.write(b"\xff\xff\xff\xff")
    with pytest.raises(EngineError, match=r"engine\.model_sha256 mismatch"):
        Recognizer(str(copy), sha256=WHISPER_BASE_SHA256).load()
    assemble_whisper_base(copy)
    assert _sha256(copy / "vocabulary.txt") == WHISPER_BASE_FILES["vocabulary.txt"]
    assert _sha256(weights) == WHISPER_BASE_SHA256
    assert not list(copy.glob(".*.partial"))


def test_without_its_packages_assembling_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Uninstalling a package inside a test is not possible: the name looked up is replaced.
    monkeypatch.setattr(whisper_models, "_PARTS", ("no_such_whisper_part", "nor_this_one"))
    with pytest.raises(EngineError, match=r"pip install 'streamguard\[whisper-base\]'"):
        assemble_whisper_base(tmp_path / "nothing")


def test_the_assembly_command_prints_the_config_to_use(
    tmp_path: Path, base_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "from-command"
    shutil.copytree(base_dir, target)
    assert whisper_models.main([str(target)]) == 0
    printed = capsys.readouterr().out
    assert f'multilingual_model = "{target.resolve()}"' in printed
    assert f'multilingual_model_sha256 = "{WHISPER_BASE_SHA256}"' in printed
    assert whisper_models.main([]) == 2


async def test_german_speech_is_heard_again_in_german_by_the_multilingual_model(
    tiny: Recognizer, base: Recognizer, speech: SpeechCache
) -> None:
    verdict = await _judge(LocalEngine(recognizer=tiny, multilingual=base), speech, *GERMAN_THREAT)
    assert "non-English speech (de)" in verdict.unsupported
    assert UNINTELLIGIBLE not in verdict.unsupported
    assert "Abend" in verdict.text
    assert "umbringen" in verdict.text
    # Judged in its language: the default library's "idiot" is heard in the German sentence.
    assert "idiot" in [hit.keyword for hit in verdict.keywords]
    assert verdict.suggestion is not Suggestion.PASS
    assert "other languages: whisper" in verdict.engine_version


async def test_french_speech_is_routed_to_the_multilingual_model_and_passes(
    tiny: Recognizer, base: Recognizer, speech: SpeechCache
) -> None:
    """Routed and reported as non-English. Which language whisper base names for this
    synthetic voice varies (fr on one run, ja on another: the detection is fragile,
    docs/benchmarks.md), so only "not English" is asserted."""
    verdict = await _judge(LocalEngine(recognizer=tiny, multilingual=base), speech, *FRENCH)
    routed = [u for u in verdict.unsupported if u.startswith("non-English speech (")]
    assert routed
    assert "non-English speech (en)" not in routed
    assert UNINTELLIGIBLE not in verdict.unsupported
    assert verdict.suggestion is Suggestion.PASS


async def test_without_a_multilingual_model_german_is_reported_unsupported(
    tiny: Recognizer, speech: SpeechCache
) -> None:
    verdict = await _judge(LocalEngine(recognizer=tiny), speech, *GERMAN_THREAT)
    assert UNINTELLIGIBLE in verdict.unsupported
    assert not any(u.startswith("non-English") for u in verdict.unsupported)
    assert "Abend" not in verdict.text


async def test_english_tiny_en_follows_is_not_heard_again(
    tiny: Recognizer, base: Recognizer, speech: SpeechCache
) -> None:
    alone = await _judge(LocalEngine(recognizer=tiny), speech, *ENGLISH)
    routed = await _judge(LocalEngine(recognizer=tiny, multilingual=base), speech, *ENGLISH)
    assert routed.text == alone.text
    assert routed.text.strip()
    assert routed.unsupported == alone.unsupported
    assert not any(u.startswith("non-English") for u in routed.unsupported)


async def test_whisper_base_as_the_model_detects_the_language_itself(
    base: Recognizer, speech: SpeechCache
) -> None:
    verdict = await _judge(LocalEngine(recognizer=base), speech, *GERMAN_THREAT)
    assert "non-English speech (de)" in verdict.unsupported
    assert "Abend" in verdict.text


async def test_a_fixed_model_language_transcribes_in_it_without_detection(
    base_dir: Path, speech: SpeechCache
) -> None:
    config = LocalEngineConfig(
        model=str(base_dir), model_sha256=WHISPER_BASE_SHA256, model_language="en"
    )
    engine = LocalEngine(config)
    assert engine.recognizer.language == "en"
    assert not engine.recognizer.multilingual
    french, english = await _judge_all(engine, speech, FRENCH, ENGLISH)
    # Made to hear French as English, it cannot say "French": either it renders English
    # words or it is unsure; it never reports the language it did not detect.
    assert not any(u.startswith("non-English") for u in french.unsupported)
    assert "picnic" in english.text
    assert english.details["transcript"]["language"] == "en"


async def test_a_multilingual_model_with_the_wrong_checksum_stops_the_engine_at_start(
    base_dir: Path, tiny: Recognizer
) -> None:
    config = LocalEngineConfig(multilingual_model=str(base_dir), multilingual_model_sha256="0" * 64)
    engine = LocalEngine(config, recognizer=tiny)
    assert engine.multilingual is not None
    with pytest.raises(EngineError, match=WHISPER_BASE_SHA256):
        async with engine:
            pass
