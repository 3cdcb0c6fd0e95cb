"""The verdict on one segment, in the shape of AMS's AudioResult, whichever engine judged it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["KeywordHit", "Outcome", "Suggestion", "Verdict"]


class Suggestion(StrEnum):
    PASS = "Pass"
    REVIEW = "Review"
    BLOCK = "Block"


class Outcome(StrEnum):
    """What happened to the segment: only ``MODERATED`` carries a judgement of its content."""

    MODERATED = "moderated"
    NO_SPEECH = "no_speech"
    """The speech gate heard no speech; Pass without asking an engine (not billed)."""
    SKIPPED_OVERLOADED = "skipped_overloaded"
    """The engine's backlog was full; the segment is recorded but was not judged."""
    FAILED = "failed"
    """The engine could not judge the segment; ``reason`` says why."""
    NOT_MODERATED = "not_moderated"
    """No engine was asked (e.g. moderation switched off)."""


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """A keyword heard in the transcript and the library that flagged it."""

    keyword: str
    library_id: str
    library_name: str
    label: str
    sub_label: str
    score: int
    text_start: int
    """Character offsets of the hit in ``Verdict.text``."""
    text_end: int
    time_start: float | None = None
    """Seconds from the start of the segment, when the engine knows them."""
    time_end: float | None = None
    heard: str = ""
    """The text as written or heard (e.g. "k1ll y0u" for the keyword "kill you")."""

    def to_json(self) -> dict[str, Any]:
        return {
            "keyword": self.keyword,
            "library_id": self.library_id,
            "library_name": self.library_name,
            "label": self.label,
            "sub_label": self.sub_label,
            "score": self.score,
            "text_start": self.text_start,
            "text_end": self.text_end,
            "time_start": self.time_start,
            "time_end": self.time_end,
            "heard": self.heard,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """One engine's judgement of one segment (AMS AudioResult, plus what it could not judge)."""

    segment_id: str
    outcome: Outcome
    engine: str
    engine_version: str
    suggestion: Suggestion = Suggestion.PASS
    label: str = "Normal"
    sub_label: str = ""
    score: int = 0
    hit: bool = False
    text: str = ""
    keywords: tuple[KeywordHit, ...] = ()
    unsupported: tuple[str, ...] = ()
    """What the engine could not judge here (e.g. "non-English speech", "moaning")."""
    reason: str = ""
    """Why the outcome is what it is, in words (e.g. "no speech", "skipped: overloaded")."""
    task_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "outcome": self.outcome.value,
            "engine": self.engine,
            "engine_version": self.engine_version,
            "suggestion": self.suggestion.value,
            "label": self.label,
            "sub_label": self.sub_label,
            "score": self.score,
            "hit": self.hit,
            "text": self.text,
            "keywords": [k.to_json() for k in self.keywords],
            "unsupported": list(self.unsupported),
            "reason": self.reason,
            "task_id": self.task_id,
            "details": self.details,
        }
