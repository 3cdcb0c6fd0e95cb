"""Policy: from one verdict and a profile to a risk decision.

The rules of the moderation consoles (Alibaba Image Moderation 2.0): every label that was
hit gets a risk level from its thresholds (``score >= high`` is high, ``>= medium`` medium,
below that low); a custom-library hit is high; the riskiest label wins (ties: higher score);
nothing hit is no risk. Only a verdict whose outcome is ``moderated`` judged the content, so
only such verdicts can carry risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streamguard.config.policy import ImageLibrary, LabelRule, ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.verdict import KeywordHit, Outcome, Suggestion, Verdict

__all__ = ["Decision", "RiskLevel", "decide", "decide_picture"]

CUSTOM_LABEL = "Custom"
"""The label AMS gives hits of a customer's own keyword library."""


class RiskLevel(StrEnum):
    """How risky a segment is; compare with ``rank``."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {RiskLevel.NONE: 0, RiskLevel.LOW: 1, RiskLevel.MEDIUM: 2, RiskLevel.HIGH: 3}


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's judgement of one segment: the winning label and whether it alerts."""

    risk: RiskLevel
    alerts: bool
    """Whether the risk reaches the profile's ``min_risk`` (and the stream is not exempt)."""
    label: str = "Normal"
    sub_label: str = ""
    score: int = 0
    suggestion: Suggestion = Suggestion.PASS
    custom: bool = False
    """The winner is a custom-library hit."""
    keywords: tuple[KeywordHit, ...] = ()
    """The keyword hits that count (ignored words removed)."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _Candidate:
    label: str
    sub_label: str
    score: int
    custom: bool


def decide(profile: ProfileConfig, stream: StreamConfig, verdict: Verdict) -> Decision:
    """Judge ``verdict`` of a segment of ``stream`` under ``profile``."""
    if verdict.outcome is not Outcome.MODERATED:
        return Decision(RiskLevel.NONE, False, reason=f"not moderated: {verdict.outcome.value}")
    if stream.id in profile.exempt_streams:
        return Decision(RiskLevel.NONE, False, reason=f"stream {stream.id} is exempt")
    if stream.room_id in profile.exempt_rooms:
        return Decision(RiskLevel.NONE, False, reason=f"room {stream.room_id} is exempt")

    ignored = {word.casefold() for word in profile.ignored_words}
    keywords = tuple(k for k in verdict.keywords if k.keyword.casefold() not in ignored)
    candidates = [
        _Candidate(
            k.label or verdict.label,
            k.sub_label,
            k.score,
            k.label == CUSTOM_LABEL or k.library_id in profile.custom_libraries,
        )
        for k in keywords
    ]
    # The verdict's own label counts unless all the keywords behind it were ignored.
    only_ignored = bool(verdict.keywords) and not keywords
    if verdict.label not in ("", "Normal") and not only_ignored:
        candidates.append(
            _Candidate(
                verdict.label, verdict.sub_label, verdict.score, verdict.label == CUSTOM_LABEL
            )
        )

    best: tuple[RiskLevel, _Candidate] | None = None
    for candidate in candidates:
        risk = _risk(profile, candidate)
        if risk is RiskLevel.NONE:
            continue
        if best is None or (risk.rank, candidate.score) > (best[0].rank, best[1].score):
            best = (risk, candidate)
    if best is None:
        return Decision(RiskLevel.NONE, False, keywords=keywords, reason="nothing hit")

    risk, winner = best
    alerts = risk.rank >= RiskLevel(profile.min_risk).rank
    return Decision(
        risk=risk,
        alerts=alerts,
        label=winner.label,
        sub_label=winner.sub_label,
        score=winner.score,
        suggestion=verdict.suggestion,
        custom=winner.custom,
        keywords=tuple(k for k in keywords if (k.label or verdict.label) == winner.label),
        reason=(
            f"{winner.label} {risk.value}"
            + (" (custom library)" if winner.custom else f" (score {winner.score})")
            + ("" if alerts else f", below min_risk {profile.min_risk}")
        ),
    )


def decide_picture(
    profile: ProfileConfig,
    verdict: Verdict,
    stream: StreamConfig | None = None,
    fingerprint: int | None = None,
) -> Decision:
    """Judge ``verdict`` of a picture (a frame of ``stream``, or an image sent to the API)
    under ``profile``'s image rules: the same levels as the audio's, from ``image_labels``.

    With the picture's ``fingerprint``, its image libraries first: a picture in an exempt
    library carries no risk, one in a block library is high risk (also when the engine
    could not judge it)."""
    if stream is not None and stream.id in profile.exempt_streams:
        return Decision(RiskLevel.NONE, False, reason=f"stream {stream.id} is exempt")
    if stream is not None and stream.room_id in profile.exempt_rooms:
        return Decision(RiskLevel.NONE, False, reason=f"room {stream.room_id} is exempt")
    library = _library(profile, fingerprint)
    if library is not None:
        return _library_decision(profile, library)
    if verdict.outcome is not Outcome.MODERATED:
        return Decision(RiskLevel.NONE, False, reason=f"not moderated: {verdict.outcome.value}")
    if verdict.label in ("", "Normal"):
        return Decision(RiskLevel.NONE, False, reason="nothing hit")
    rule = profile.image_labels.get(verdict.label, profile.image_other_labels)
    candidate = _Candidate(verdict.label, verdict.sub_label, verdict.score, custom=False)
    risk = _rated(rule, candidate)
    if risk is RiskLevel.NONE:
        return Decision(RiskLevel.NONE, False, reason=f"{verdict.label} is switched off")
    alerts = risk.rank >= RiskLevel(profile.min_risk).rank
    return Decision(
        risk=risk,
        alerts=alerts,
        label=verdict.label,
        sub_label=verdict.sub_label,
        score=verdict.score,
        suggestion=verdict.suggestion,
        reason=(
            f"{verdict.label} {risk.value} (score {verdict.score})"
            + ("" if alerts else f", below min_risk {profile.min_risk}")
        ),
    )


def _library(profile: ProfileConfig, fingerprint: int | None) -> ImageLibrary | None:
    """The library the picture is in: an exempt one before a block one."""
    if fingerprint is None:
        return None
    hits = [lib for lib in profile.image_libraries if lib.matches(fingerprint)]
    return next((lib for lib in hits if lib.action == "exempt"), hits[0] if hits else None)


def _library_decision(profile: ProfileConfig, library: ImageLibrary) -> Decision:
    if library.action == "exempt":
        return Decision(RiskLevel.NONE, False, reason=f"in exempt image library {library.id}")
    return Decision(
        risk=RiskLevel.HIGH,
        alerts=RiskLevel.HIGH.rank >= RiskLevel(profile.min_risk).rank,
        label=library.label,
        score=100,
        suggestion=Suggestion.BLOCK,
        custom=True,
        reason=f"{library.label} high (image library {library.id})",
    )


def _risk(profile: ProfileConfig, candidate: _Candidate) -> RiskLevel:
    return _rated(profile.labels.get(candidate.label, profile.other_labels), candidate)


def _rated(rule: LabelRule, candidate: _Candidate) -> RiskLevel:
    if not rule.enabled:
        return RiskLevel.NONE
    if candidate.custom or candidate.score >= rule.high:
        return RiskLevel.HIGH
    if candidate.score >= rule.medium:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW
