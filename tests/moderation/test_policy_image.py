"""The image rules of a profile: a picture's verdict to a risk, like a segment's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streamguard.config.policy import ImageLibrary, LabelRule, ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.moderation.policy import RiskLevel, decide, decide_picture


def picture(label: str, score: int, outcome: Outcome = Outcome.MODERATED) -> Verdict:
    return Verdict(
        segment_id="room-1-20260102030405-f00001",
        outcome=outcome,
        engine="e",
        engine_version="1",
        suggestion=Suggestion.REVIEW,
        label=label,
        score=score,
        hit=label != "Normal",
    )


def test_image_thresholds_give_the_risk_and_only_the_image_rules_count() -> None:
    profile = ProfileConfig(
        labels={"Porn": LabelRule(enabled=False)},  # the audio's rule: not for pictures
        image_labels={"Porn": LabelRule(medium=40, high=80)},
        min_risk="medium",
    )
    stream = StreamConfig(id="s1", url="http://127.0.0.1/x", room="r1")
    assert decide_picture(profile, picture("Porn", 85)).risk is RiskLevel.HIGH
    medium = decide_picture(profile, picture("Porn", 50), stream)
    assert (medium.risk, medium.alerts, medium.label, medium.score) == (
        RiskLevel.MEDIUM,
        True,
        "Porn",
        50,
    )
    low = decide_picture(profile, picture("Porn", 39))
    assert (low.risk, low.alerts) == (RiskLevel.LOW, False)
    assert "below min_risk" in low.reason
    # The same verdict on a segment goes by the audio's rules, where Porn is off.
    assert decide(profile, stream, picture("Porn", 85)).risk is RiskLevel.NONE


def test_a_switched_off_label_nothing_hit_failed_or_exempt_is_no_risk() -> None:
    profile = ProfileConfig(
        image_labels={"Porn": LabelRule(enabled=False)},
        image_other_labels=LabelRule(medium=10, high=20),
        exempt_rooms=["quiet"],
    )
    assert decide_picture(profile, picture("Porn", 99)).risk is RiskLevel.NONE
    assert decide_picture(profile, picture("Violence", 15)).risk is RiskLevel.MEDIUM
    assert decide_picture(profile, picture("Normal", 0)).risk is RiskLevel.NONE
    failed = decide_picture(profile, picture("Violence", 99, Outcome.FAILED))
    assert failed.risk is RiskLevel.NONE
    exempt = StreamConfig(id="s2", url="http://127.0.0.1/x", room="quiet")
    assert decide_picture(profile, picture("Violence", 99), exempt).risk is RiskLevel.NONE


def test_an_image_library_match_decides_exempt_before_block() -> None:
    block = ImageLibrary(id="bad", action="block", label="Ad", fingerprints=["00000000000000ff"])
    exempt = ImageLibrary(id="ok", action="exempt", fingerprints=["000000000000ffff"], distance=8)
    profile = ProfileConfig(image_libraries=[block, exempt])
    failed = picture("Normal", 0, Outcome.FAILED)
    # Within 4 bits of the block entry (and 8+ from the exempt one): high, engine or not.
    hit = decide_picture(profile, failed, fingerprint=0x0F)
    assert (hit.risk, hit.label, hit.custom, hit.alerts) == (RiskLevel.HIGH, "Ad", True, True)
    # Within reach of both: exempt wins, over a Porn verdict too.
    both = decide_picture(profile, picture("Porn", 99), fingerprint=0x00FF | 0x0F00)
    assert (both.risk, both.alerts) == (RiskLevel.NONE, False)
    assert "ok" in both.reason
    # Far from both: the engine's verdict decides.
    assert decide_picture(profile, picture("Porn", 99), fingerprint=1 << 63).risk is RiskLevel.HIGH


def test_an_image_library_fingerprint_must_be_16_hex_digits() -> None:
    with pytest.raises(ValidationError, match="16 lowercase hex"):
        ImageLibrary(id="x", action="block", fingerprints=["xyz"])
