"""The local engine's judgement: what the gate and whisper found → a ``Verdict``.

Pure functions, no I/O: a transcript, the judgement of its text (keyword hits and the
semantic layer, combined in ``judge``) and the gate's report decide the verdict.

- A hit → the judgement's ``suggestion``, ``label``/``sub_label``/``score``; every keyword
  hit in ``keywords`` with the text as heard, its offsets in ``text`` and its times;
  ``details.signals`` says which signals fired and ``details.semantic`` gives the semantic
  finding (library, score, level, nearest examples).
- No hit → Pass.
- ``unsupported`` always lists what the engine cannot hear (``ALWAYS_UNSUPPORTED``), plus
  speech it did not follow or that is in another language (``doubts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.segment import Segment
from streamguard.core.verdict import KeywordHit, Outcome, Verdict
from streamguard.engines.local.judge import Judgement
from streamguard.engines.local.keywords import KeywordMatch
from streamguard.engines.local.listen import Gated, Heard
from streamguard.engines.local.recognizer import Transcript
from streamguard.engines.local.stats import Usage

__all__ = [
    "ALWAYS_UNSUPPORTED",
    "ENGINE",
    "UNINTELLIGIBLE",
    "Confidence",
    "assess",
    "doubts",
    "failed",
    "keyword_hit",
    "no_speech",
    "recheck_details",
    "skipped",
    "usage",
]

ENGINE = "local"
"""The engine's name on its verdicts."""
ALWAYS_UNSUPPORTED = ("moaning", "screams")
"""Non-speech vocal sounds: the engine hears words only, so it never vouches for these."""
UNINTELLIGIBLE = "possible non-English or unintelligible speech"
"""Reported when an English-only model was unsure of what it heard."""


@dataclass(frozen=True, slots=True)
class Confidence:
    """When the engine vouches for a transcript: its language, and how sure whisper was."""

    language: str
    """The language the libraries are written for."""
    multilingual: bool
    """Whether the model detects languages (then the language decides, not the scores)."""
    logprob_threshold: float
    compression_ratio_threshold: float
    word_probability_threshold: float

    @classmethod
    def of(cls, config: LocalEngineConfig, *, multilingual: bool) -> Self:
        """The thresholds ``config`` sets, for a model that is ``multilingual`` or not."""
        return cls(
            language=config.language,
            multilingual=multilingual,
            logprob_threshold=config.logprob_threshold,
            compression_ratio_threshold=config.compression_ratio_threshold,
            word_probability_threshold=config.word_probability_threshold,
        )


def _verdict(
    segment: Segment, outcome: Outcome, reason: str, *, version: str, **fields: Any
) -> Verdict:
    return Verdict(
        segment_id=segment.id,
        outcome=outcome,
        engine=ENGINE,
        engine_version=version,
        reason=reason,
        **fields,
    )


def failed(segment: Segment, reason: str, *, version: str) -> Verdict:
    """``segment`` could not be judged, for ``reason`` (which starts "failed: ")."""
    return _verdict(segment, Outcome.FAILED, reason, version=version)


def skipped(segment: Segment, *, depth: int, limit: int, version: str) -> Verdict:
    """``segment`` was not judged: ``depth`` segments waited, ``limit`` may."""
    return _verdict(
        segment,
        Outcome.SKIPPED_OVERLOADED,
        "skipped: overloaded",
        version=version,
        details={"backlog_depth": depth, "backlog_limit": limit},
    )


def no_speech(segment: Segment, gated: Gated, *, version: str) -> Verdict:
    """The gate heard no speech in ``segment``: Pass, never recognised."""
    return _verdict(
        segment,
        Outcome.NO_SPEECH,
        "no speech",
        version=version,
        unsupported=ALWAYS_UNSUPPORTED,
        details=gated.details,
    )


def assess(
    segment: Segment,
    gated: Gated,
    heard: Heard,
    *,
    judgement: Judgement,
    library_errors: Sequence[str],
    confidence: Confidence,
    version: str,
) -> Verdict:
    """The verdict on a recognised segment: what its text was judged to be (keyword hits
    and the semantic layer, ``judgement``) and what could not be judged.

    ``library_errors`` are broken library files (the previous versions are in use).
    """
    transcript = heard.transcript
    details = dict(gated.details)
    details["transcript"] = transcript.to_json()
    second_listen = recheck_details(heard)
    if second_listen is not None:
        details["recheck"] = second_listen
    if library_errors:
        details["library_errors"] = list(library_errors)
    if judgement.semantic_error is not None:
        details["semantic_error"] = judgement.semantic_error
    hits = tuple(keyword_hit(m, transcript) for m in judgement.keywords)
    unsupported = (*ALWAYS_UNSUPPORTED, *doubts(transcript, gated.speech_seconds, confidence))
    fields: dict[str, Any] = {"text": transcript.text, "unsupported": unsupported}
    if judgement.hit:
        details["signals"] = [s.value for s in judgement.signals]
        semantic = judgement.semantic_json()
        if semantic is not None:
            details["semantic"] = semantic
        fields |= {
            "suggestion": judgement.suggestion,
            "label": judgement.label,
            "sub_label": judgement.sub_label,
            "score": judgement.score,
            "hit": True,
            "keywords": hits,
        }
    details["seconds"] = round(_busy_seconds(gated, heard), 3)
    return _verdict(
        segment, Outcome.MODERATED, judgement.reason, version=version, details=details, **fields
    )


def recheck_details(heard: Heard) -> dict[str, Any] | None:
    """What the second listen did, for ``details.recheck``; None when it did not run."""
    if heard.rechecked_seconds:
        return {
            "rechecked_seconds": round(heard.rechecked_seconds, 3),
            "plain_text": heard.plain_text,
            "corrections": [c.to_json() for c in heard.corrections],
        }
    if heard.recheck_error is not None:
        return {"error": heard.recheck_error, "plain_text": heard.plain_text}
    return None


def keyword_hit(match: KeywordMatch, transcript: Transcript) -> KeywordHit:
    """``match`` in ``transcript``'s text as a verdict's hit, timed by the words it covers."""
    words = [w for w in transcript.words if w.text_end > match.start and w.text_start < match.end]
    return KeywordHit(
        keyword=match.keyword,
        library_id=match.library.id,
        library_name=match.library.name,
        label=match.library.label,
        sub_label=match.library.sub_label,
        score=match.library.score,
        text_start=match.start,
        text_end=match.end,
        time_start=words[0].start if words else None,
        time_end=words[-1].end if words else None,
        heard=transcript.text[match.start : match.end],
    )


def doubts(transcript: Transcript, speech_seconds: float, confidence: Confidence) -> list[str]:
    """What this transcript cannot vouch for: other languages, or audio it did not follow.

    ``speech_seconds`` is what the gate heard as speech: a second or more of it with no
    words is not clean speech either.
    """
    silent_transcript = not transcript.text and speech_seconds >= 1.0
    if confidence.multilingual:
        if transcript.text and transcript.language != confidence.language:
            if confidence.language == "en":
                return [f"non-English speech ({transcript.language})"]
            return [f"speech not in {confidence.language} ({transcript.language})"]
        return [UNINTELLIGIBLE] if silent_transcript else []
    unsure = (
        (
            transcript.avg_logprob is not None
            and transcript.avg_logprob < confidence.logprob_threshold
        )
        or (
            transcript.compression_ratio is not None
            and transcript.compression_ratio > confidence.compression_ratio_threshold
        )
        or (
            transcript.word_probability is not None
            and transcript.word_probability < confidence.word_probability_threshold
        )
    )
    return [UNINTELLIGIBLE] if unsure or silent_transcript else []


def usage(segment: Segment, gated: Gated, heard: Heard | None = None) -> Usage:
    """What judging ``segment`` cost; ``heard`` is None when it had no speech to hear."""
    if heard is None:
        return Usage(segment.duration, busy_seconds=gated.seconds)
    return Usage(
        segment.duration,
        speech_seconds=gated.speech_seconds,
        recognised_seconds=heard.transcript.audio_seconds,
        busy_seconds=_busy_seconds(gated, heard),
        rechecked_seconds=heard.rechecked_seconds,
    )


def _busy_seconds(gated: Gated, heard: Heard) -> float:
    return gated.seconds + heard.transcript.seconds
