"""How the two signals on a text combine into one judgement. Pure.

- A keyword hit → its library's label and score; Block when the score reaches the
  library's ``block_score``, else Review (as before the semantic layer).
- A semantic score at least ``Rules.high_score`` → the example library's label with the
  library's score (the label's risk, like a keyword hit); at least ``Rules.review_score``
  → the label with the semantic score itself. Semantic-only hits suggest Review: their
  errors are about topic, not intent. ``Rules.block`` lets a high one Block when the
  library's score reaches its ``block_score``.
- The label and score of the highest-scoring candidate win (a keyword hit on a tie); the
  judgement lists which signals fired, the keywords and the semantic finding with its
  nearest examples. The profile's thresholds then apply to the score as to any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.verdict import Suggestion
from streamguard.engines.local.keywords import KeywordMatch
from streamguard.engines.local.semantic import SemanticFinding

__all__ = ["Judgement", "Level", "Rules", "Signal", "judge"]


class Signal(StrEnum):
    KEYWORD = "keyword"
    SEMANTIC = "semantic"


class Level(StrEnum):
    """How strongly the semantic layer matched."""

    HIGH = "high"
    MEDIUM = "medium"


@dataclass(frozen=True, slots=True)
class Rules:
    """When a semantic score counts, and how much."""

    review_score: int = 55
    high_score: int = 90
    block: bool = False

    @classmethod
    def of(cls, config: LocalEngineConfig) -> Self:
        return cls(
            review_score=config.semantic_review_score,
            high_score=config.semantic_high_score,
            block=config.semantic_block,
        )


@dataclass(frozen=True, slots=True)
class Judgement:
    """What a text was judged to be, and which signals said so."""

    text: str
    suggestion: Suggestion = Suggestion.PASS
    label: str = "Normal"
    sub_label: str = ""
    score: int = 0
    keywords: tuple[KeywordMatch, ...] = ()
    semantic: SemanticFinding | None = None
    """The semantic finding that counted (at least ``review_score``), if any."""
    level: Level | None = None
    best_semantic_score: int = 0
    """The semantic score of the nearest flag library, counted or not (0: layer off)."""
    semantic_error: str | None = None
    """Why the semantic layer did not judge this text (keywords alone did)."""

    @property
    def hit(self) -> bool:
        return bool(self.keywords) or self.semantic is not None

    @property
    def signals(self) -> tuple[Signal, ...]:
        fired = [Signal.KEYWORD] if self.keywords else []
        return (*fired, Signal.SEMANTIC) if self.semantic is not None else tuple(fired)

    @property
    def reason(self) -> str:
        if not self.hit:
            return "no keyword heard" if not self.best_semantic_score else "nothing hit"
        parts = ["keyword hit"] if self.keywords else []
        if self.semantic is not None and self.level is not None:
            parts.append(f"semantic match ({self.level.value})")
        return "; ".join(parts)

    def semantic_json(self) -> dict[str, Any] | None:
        """``details.semantic`` of a verdict: the finding, its level and the signals."""
        if self.semantic is None or self.level is None:
            return None
        return {**self.semantic.to_json(), "level": self.level.value}

    def to_json(self) -> dict[str, Any]:
        """One text's answer (``moderate-text``, ``POST /v1/moderate/text``)."""
        return {
            "suggestion": self.suggestion.value,
            "label": self.label,
            "sub_label": self.sub_label,
            "score": self.score,
            "signals": [s.value for s in self.signals],
            "keywords": [
                {
                    "keyword": m.keyword,
                    "library_id": m.library.id,
                    "label": m.library.label,
                    "score": m.library.score,
                    "text": self.text[m.start : m.end],
                }
                for m in self.keywords
            ],
            "semantic": self.semantic_json(),
            **({"semantic_error": self.semantic_error} if self.semantic_error else {}),
        }


def judge(
    text: str,
    keywords: Sequence[KeywordMatch],
    finding: SemanticFinding | None,
    rules: Rules,
) -> Judgement:
    """Combine ``keywords`` found in ``text`` and the semantic ``finding`` under ``rules``."""
    # (score, is-keyword, label, sub_label, blocks)
    candidates = [
        (m.library.score, 1, m.library.label, m.library.sub_label, _blocks(m)) for m in keywords
    ]
    level = _level(finding, rules)
    if finding is not None and level is not None:
        library = finding.library
        high = level is Level.HIGH
        candidates.append(
            (
                library.score if high else finding.score,
                0,
                library.label,
                library.sub_label,
                high and rules.block and library.score >= library.block_score,
            )
        )
    best_semantic = finding.score if finding is not None else 0
    if not candidates:
        return Judgement(text, best_semantic_score=best_semantic)
    score, _, label, sub_label, _ = max(candidates, key=lambda c: (c[0], c[1]))
    block = any(c[4] for c in candidates)
    return Judgement(
        text=text,
        suggestion=Suggestion.BLOCK if block else Suggestion.REVIEW,
        label=label,
        sub_label=sub_label,
        score=score,
        keywords=tuple(keywords),
        semantic=finding if level is not None else None,
        level=level,
        best_semantic_score=best_semantic,
    )


def _blocks(match: KeywordMatch) -> bool:
    return match.library.score >= match.library.block_score


def _level(finding: SemanticFinding | None, rules: Rules) -> Level | None:
    if finding is None or finding.score < rules.review_score:
        return None
    return Level.HIGH if finding.score >= rules.high_score else Level.MEDIUM
