"""The local engine's judgement on its own: transcript, keyword hits and gate report → verdict."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.engines.gate import SpeechRegion
from streamguard.engines.local.assess import (
    ALWAYS_UNSUPPORTED,
    UNINTELLIGIBLE,
    Confidence,
    assess,
    doubts,
    failed,
    keyword_hit,
    no_speech,
    recheck_details,
    skipped,
    usage,
)
from streamguard.engines.local.examples import ExampleKind, ExampleLibrary
from streamguard.engines.local.judge import Rules, judge
from streamguard.engines.local.keywords import KeywordLibrary, KeywordMatcher
from streamguard.engines.local.listen import Gated, Heard
from streamguard.engines.local.recheck import Correction
from streamguard.engines.local.recognizer import Transcript, Word
from streamguard.engines.local.semantic import Nearest, SemanticFinding

AT = datetime(2026, 1, 1, tzinfo=UTC)
SEGMENT = Segment(
    stream_id="room-1",
    seq=7,
    attached_at=AT,
    samples=np.zeros(10 * SAMPLE_RATE, dtype=np.int16),
    started_at=AT,
    ended_at=AT,
    media_start=0.0,
    gap_before=0.0,
    flags=frozenset(),
)
MATCHER = KeywordMatcher(
    [
        KeywordLibrary(
            id="abuse",
            name="Abuse",
            label="Abuse",
            sub_label="Insult",
            score=70,
            keywords=["idiot"],
        ),
        KeywordLibrary(
            id="threats", name="Threats", label="Abuse", score=90, keywords=["kill you"]
        ),
        KeywordLibrary(id="spam", name="Spam", label="Ad", score=40, keywords=["promo code"]),
    ]
)
ENGLISH = Confidence.of(LocalEngineConfig(), multilingual=False)
GATED = Gated(
    regions=(SpeechRegion(1.0, 4.0),),
    speech_seconds=2.5,
    details={"gate": {"speech_seconds": 2.5}},
    events=(),
    seconds=0.01,
)


def _transcript(*words: tuple[str, float, float]) -> Transcript:
    """A sure English transcript of (text, start, end) words, joined as the recogniser does."""
    built: list[Word] = []
    text = ""
    for spoken, start, end in words:
        text += " " if text else ""
        built.append(Word(spoken, start, end, 0.9, len(text), len(text) + len(spoken)))
        text += spoken
    return Transcript(
        text=text,
        words=tuple(built),
        language="en",
        language_probability=1.0,
        avg_logprob=-0.3 if built else None,
        no_speech_prob=0.1,
        compression_ratio=1.2 if built else None,
        word_probability=0.9 if built else None,
        suppressed=(),
        audio_seconds=3.0,
        seconds=0.5,
    )


def _said(text: str, **changes: Any) -> Transcript:
    """``text``'s words, a quarter of a second each from 1 s; ``changes`` to its scores."""
    timed = [(w, 1.0 + 0.25 * n, 1.25 + 0.25 * n) for n, w in enumerate(text.split())]
    return dataclasses.replace(_transcript(*timed), **changes)


def _assess(
    transcript: Transcript,
    *,
    gated: Gated = GATED,
    confidence: Confidence = ENGLISH,
    library_errors: tuple[str, ...] = (),
    heard: Heard | None = None,
) -> Verdict:
    return assess(
        SEGMENT,
        gated,
        heard or Heard(transcript, transcript.text),
        judgement=judge(transcript.text, MATCHER.match(transcript.text), None, Rules()),
        library_errors=library_errors,
        confidence=confidence,
        version="test",
    )


def test_confident_speech_without_keywords_passes() -> None:
    verdict = _assess(_said("We are planning a picnic by the river."))
    assert (verdict.outcome, verdict.reason) == (Outcome.MODERATED, "no keyword heard")
    assert (verdict.suggestion, verdict.hit, verdict.keywords) == (Suggestion.PASS, False, ())
    assert (verdict.label, verdict.score) == ("Normal", 0)
    assert verdict.text == "We are planning a picnic by the river."
    assert verdict.unsupported == ALWAYS_UNSUPPORTED
    assert (verdict.segment_id, verdict.engine, verdict.engine_version) == (
        SEGMENT.id,
        "local",
        "test",
    )
    assert list(verdict.details) == ["gate", "transcript", "seconds"]
    assert verdict.details["gate"] == GATED.details["gate"]
    assert verdict.details["seconds"] == pytest.approx(0.51)


def test_a_hit_below_its_block_score_suggests_review_with_its_label() -> None:
    verdict = _assess(_said("Shut up, you stupid idiot."))
    assert (verdict.outcome, verdict.reason) == (Outcome.MODERATED, "keyword hit")
    assert (verdict.suggestion, verdict.hit) == (Suggestion.REVIEW, True)
    assert (verdict.label, verdict.sub_label, verdict.score) == ("Abuse", "Insult", 70)
    (hit,) = verdict.keywords
    assert (hit.keyword, hit.library_id, hit.library_name) == ("idiot", "abuse", "Abuse")
    assert hit.heard == "idiot"
    assert verdict.text[hit.text_start : hit.text_end] == hit.heard
    # The fifth word, said from 2.0 s to 2.25 s into the segment.
    assert (hit.time_start, hit.time_end) == (2.0, 2.25)


def test_the_highest_scoring_hit_labels_the_verdict_and_any_block_score_blocks() -> None:
    verdict = _assess(_said("Use my promo code or I will kill you."))
    assert [k.library_id for k in verdict.keywords] == ["spam", "threats"]
    assert (verdict.label, verdict.sub_label, verdict.score) == ("Abuse", "", 90)
    assert verdict.suggestion is Suggestion.BLOCK


def test_a_hit_with_no_timed_words_has_no_times() -> None:
    untimed = Transcript("idiot", (), "en", 1.0, -0.3, 0.1, 1.2, 0.9, (), 1.0, 0.1)
    (match,) = MATCHER.match(untimed.text)
    hit = keyword_hit(match, untimed)
    assert (hit.heard, hit.time_start, hit.time_end) == ("idiot", None, None)


@pytest.mark.parametrize(
    "scores",
    [
        {"avg_logprob": -1.5},
        {"compression_ratio": 2.6},
        {"word_probability": 0.4},
    ],
    ids=["low log-probability", "repetitive", "unsure words"],
)
def test_an_unsure_english_transcript_is_reported_as_not_judged(
    scores: dict[str, float],
) -> None:
    verdict = _assess(_said("Guten Tag ich heiße Anna", **scores))
    assert verdict.unsupported == (*ALWAYS_UNSUPPORTED, UNINTELLIGIBLE)
    assert verdict.suggestion is Suggestion.PASS


def test_speech_the_gate_is_sure_of_but_whisper_made_nothing_of_is_not_judged() -> None:
    nothing = _transcript()
    assert doubts(nothing, 1.0, ENGLISH) == [UNINTELLIGIBLE]
    # Under a second of speech may be a cough or a breath: nothing to vouch for either way.
    assert doubts(nothing, 0.9, ENGLISH) == []


def test_a_multilingual_model_reports_other_languages_by_name() -> None:
    german = _said("Guten Tag ich heiße Anna", language="de", avg_logprob=-2.0)
    multilingual = Confidence.of(LocalEngineConfig(), multilingual=True)
    assert doubts(german, 2.5, multilingual) == ["non-English speech (de)"]
    french = Confidence.of(LocalEngineConfig(language="fr"), multilingual=True)
    assert doubts(german, 2.5, french) == ["speech not in fr (de)"]
    # The language decides, not whisper's scores: an unsure English transcript is judged.
    english = _said("good morning everyone", avg_logprob=-2.0)
    assert doubts(english, 2.5, multilingual) == []
    assert doubts(_transcript(), 2.5, multilingual) == [UNINTELLIGIBLE]


def test_broken_libraries_are_named_in_the_verdict() -> None:
    verdict = _assess(_said("hello there"), library_errors=("room.toml: line 3: bad",))
    assert verdict.details["library_errors"] == ["room.toml: line 3: bad"]


def test_the_second_listen_is_described_only_when_it_ran() -> None:
    plain = _said("Get three followers today.")
    corrected = _said("Get free followers today.")
    correction = Correction(
        "free followers", "spam", "free followers", "three followers", 0.05, 1.2, 1.7
    )
    assert recheck_details(Heard(plain, plain.text)) is None
    assert recheck_details(Heard(plain, plain.text, recheck_error="RuntimeError: boom")) == {
        "error": "RuntimeError: boom",
        "plain_text": "Get three followers today.",
    }
    heard = Heard(corrected, plain.text, 2.4, (correction,))
    verdict = _assess(corrected, heard=heard)
    assert verdict.details["recheck"] == {
        "rechecked_seconds": 2.4,
        "plain_text": "Get three followers today.",
        "corrections": [correction.to_json()],
    }
    assert verdict.text == "Get free followers today."


def test_segments_that_were_not_recognised_get_their_own_verdicts() -> None:
    silent = Gated(None, 0.0, {"gate": {"speech_seconds": 0.0}}, (), 0.002)
    quiet = no_speech(SEGMENT, silent, version="test")
    assert (quiet.outcome, quiet.reason, quiet.suggestion) == (
        Outcome.NO_SPEECH,
        "no speech",
        Suggestion.PASS,
    )
    assert quiet.unsupported == ALWAYS_UNSUPPORTED
    assert quiet.details == silent.details
    over = skipped(SEGMENT, depth=4, limit=4, version="test")
    assert (over.outcome, over.reason) == (Outcome.SKIPPED_OVERLOADED, "skipped: overloaded")
    assert over.details == {"backlog_depth": 4, "backlog_limit": 4}
    broken = failed(SEGMENT, "failed: engine closed", version="test")
    assert (broken.outcome, broken.reason, broken.hit) == (
        Outcome.FAILED,
        "failed: engine closed",
        False,
    )


def test_usage_charges_the_gate_and_recognition_to_the_segment() -> None:
    transcript = _said("hello there", seconds=0.4)
    heard = Heard(transcript, transcript.text, rechecked_seconds=1.5)
    spent = usage(SEGMENT, GATED, heard)
    assert (spent.audio_seconds, spent.speech_seconds, spent.recognised_seconds) == (10.0, 2.5, 3.0)
    assert spent.busy_seconds == pytest.approx(0.41)
    assert spent.rechecked_seconds == 1.5
    silent = usage(SEGMENT, GATED)
    assert (silent.audio_seconds, silent.speech_seconds, silent.recognised_seconds) == (10, 0, 0)
    assert silent.busy_seconds == 0.01


WORDS = ["you", "stupid", "idiot", "kill", "promo", "code", "the", "map", "skill", "Idiot!"]


@given(st.lists(st.sampled_from(WORDS), max_size=12))
def test_every_hit_points_at_the_words_it_was_heard_as(spoken: list[str]) -> None:
    verdict = _assess(_said(" ".join(spoken)))
    assert verdict.hit == bool(verdict.keywords)
    assert (verdict.suggestion is Suggestion.PASS) == (not verdict.hit)
    for hit in verdict.keywords:
        assert verdict.text[hit.text_start : hit.text_end] == hit.heard
        assert hit.time_start is not None
        assert hit.time_end is not None
        assert hit.time_start < hit.time_end
    if verdict.hit:
        assert verdict.score == max(k.score for k in verdict.keywords)


def test_a_semantic_hit_says_which_signal_fired_with_its_examples() -> None:
    library = ExampleLibrary(
        "threat", "Threats", "Abuse", "Threat", ExampleKind.FLAG, 90, 80, ("i know where you live",)
    )
    transcript = _said("I know where you live, idiot.")
    finding = SemanticFinding(library, 96, (Nearest("i know where you live", 0.97),))
    verdict = assess(
        SEGMENT,
        GATED,
        Heard(transcript, transcript.text),
        judgement=judge(transcript.text, MATCHER.match(transcript.text), finding, Rules()),
        library_errors=(),
        confidence=ENGLISH,
        version="test",
    )
    assert (verdict.suggestion, verdict.label, verdict.sub_label, verdict.score) == (
        Suggestion.REVIEW,
        "Abuse",
        "Threat",
        90,
    )
    assert [k.keyword for k in verdict.keywords] == ["idiot"]
    assert verdict.reason == "keyword hit; semantic match (high)"
    assert verdict.details["signals"] == ["keyword", "semantic"]
    assert verdict.details["semantic"]["examples"] == [
        {"text": "i know where you live", "similarity": 0.97}
    ]
    assert verdict.details["semantic"]["level"] == "high"
