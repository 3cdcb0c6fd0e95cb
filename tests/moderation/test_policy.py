"""Policy: thresholds give risk levels, the riskiest label wins, exemptions and outcomes."""

from __future__ import annotations

import pytest

from streamguard.config.policy import LabelRule, ProfileConfig
from streamguard.core.verdict import Outcome, Verdict
from streamguard.moderation.policy import RiskLevel, decide
from streamguard.testing.alerts import risky, segment, stream
from tests.support.alerts import keyword

PROFILE = ProfileConfig(
    labels={"Abuse": LabelRule(medium=50, high=80), "Ad": LabelRule(enabled=False)},
    other_labels=LabelRule(medium=60, high=90),
    min_risk="medium",
    custom_libraries=["lib-customer"],
    ignored_words=["Darn"],
    exempt_streams=["quiet-stream"],
    exempt_rooms=["staff-room"],
)


@pytest.mark.parametrize(
    ("label", "score", "risk"),
    [
        ("Abuse", 80, RiskLevel.HIGH),
        ("Abuse", 79, RiskLevel.MEDIUM),
        ("Abuse", 50, RiskLevel.MEDIUM),
        ("Abuse", 49, RiskLevel.LOW),
        ("Porn", 90, RiskLevel.HIGH),  # other_labels thresholds
        ("Porn", 89, RiskLevel.MEDIUM),
        ("Porn", 59, RiskLevel.LOW),
        ("Ad", 100, RiskLevel.NONE),  # switched off
        ("Normal", 0, RiskLevel.NONE),  # nothing hit
    ],
)
def test_thresholds_give_risk_levels(label: str, score: int, risk: RiskLevel) -> None:
    seg = segment()
    decision = decide(PROFILE, stream(), risky(seg, label=label, score=score))
    assert decision.risk is risk
    assert decision.alerts is (risk.rank >= RiskLevel.MEDIUM.rank)


def test_low_risk_is_below_min_risk_and_does_not_alert() -> None:
    decision = decide(PROFILE, stream(), risky(segment(), label="Abuse", score=10))
    assert (decision.risk, decision.alerts) == (RiskLevel.LOW, False)
    assert "below min_risk medium" in decision.reason
    lenient = PROFILE.model_copy(update={"min_risk": "low"})
    assert decide(lenient, stream(), risky(segment(), label="Abuse", score=10)).alerts


def test_highest_label_wins() -> None:
    seg = segment()
    verdict = risky(
        seg,
        label="Abuse",
        score=55,  # medium
        keywords=(keyword("idiot", "Abuse", 55), keyword("buy now", "Porn", 95)),
    )
    decision = decide(PROFILE, stream(), verdict)
    assert (decision.label, decision.risk, decision.score) == ("Porn", RiskLevel.HIGH, 95)
    assert [k.keyword for k in decision.keywords] == ["buy now"]


def test_custom_library_hit_is_high_whatever_its_score() -> None:
    seg = segment()
    hit = keyword("x", "Abuse", 1, "lib-customer")
    listed = risky(seg, label="Abuse", score=1, keywords=(hit,))
    decision = decide(PROFILE, stream(), listed)
    assert (decision.risk, decision.custom) == (RiskLevel.HIGH, True)
    labelled = risky(seg, label="Custom", score=3)
    assert decide(PROFILE, stream(), labelled).risk is RiskLevel.HIGH


def test_ignored_words_do_not_count() -> None:
    seg = segment()
    verdict = risky(seg, label="Abuse", score=95, keywords=(keyword("darn", "Abuse", 95),))
    decision = decide(PROFILE, stream(), verdict)
    assert (decision.risk, decision.alerts) == (RiskLevel.NONE, False)


@pytest.mark.parametrize(("stream_id", "room"), [("quiet-stream", "room-1"), ("s1", "staff-room")])
def test_exempt_streams_and_rooms_never_alert(stream_id: str, room: str) -> None:
    seg = segment(stream_id)
    decision = decide(PROFILE, stream(stream_id, room), risky(seg, label="Custom", score=100))
    assert (decision.risk, decision.alerts) == (RiskLevel.NONE, False)
    assert "exempt" in decision.reason


@pytest.mark.parametrize(
    "outcome",
    [Outcome.NO_SPEECH, Outcome.FAILED, Outcome.SKIPPED_OVERLOADED, Outcome.NOT_MODERATED],
)
def test_only_moderated_verdicts_carry_risk(outcome: Outcome) -> None:
    seg = segment()
    decision = decide(PROFILE, stream(), risky(seg, label="Custom", score=100, outcome=outcome))
    assert (decision.risk, decision.alerts) == (RiskLevel.NONE, False)


def test_a_clean_verdict_is_no_risk() -> None:
    seg = segment()
    clean = Verdict(seg.id, Outcome.MODERATED, "local", "test", text="hello there")
    assert decide(PROFILE, stream(), clean).risk is RiskLevel.NONE
