"""The feedback store on both backends (``backend``): entries validated, kept, listed newest
first (by target, up to a limit) and counted by kind and label, frames apart from the rest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamguard.core.frame import frame_id
from streamguard.core.segment import segment_id
from streamguard.state.feedback import FeedbackError
from tests.support.backends import Backend

ATTACHED = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
SEGMENT = segment_id("room-1", ATTACHED, 3)
FRAME = frame_id("room-1", ATTACHED, 3)


async def test_feedback_is_kept_listed_and_counted(backend: Backend) -> None:
    feedback = backend.feedback()
    given = [
        {"kind": "false_positive", "segment_id": SEGMENT, "label": "Abuse", "note": "a joke"},
        {"kind": "false_positive", "segment_id": SEGMENT, "label": "Abuse"},
        {"kind": "confirmed", "segment_id": FRAME, "label": "Porn"},  # a frame's result
        {"kind": "missed", "incident_id": "inc-1"},
    ]
    stored = [await feedback.record(body) for body in given]
    assert [e["target_type"] for e in stored] == [
        "segment_id",
        "segment_id",
        "frame_id",
        "incident_id",
    ]

    listed = await feedback.entries()
    assert [e["id"] for e in listed] == [e["id"] for e in reversed(stored)]  # newest first
    assert listed[-1] == stored[0]  # every field as recorded
    assert [e["id"] for e in await feedback.entries(SEGMENT)] == [stored[1]["id"], stored[0]["id"]]
    assert [e["id"] for e in await feedback.entries(limit=1)] == [stored[3]["id"]]
    assert await feedback.entries("nothing-said") == []

    everything = await feedback.counts()
    assert everything["false_positive"] == {"Abuse": 2}
    assert everything["missed"] == {"": 1}
    assert (await feedback.counts(frames=True))["confirmed"] == {"Porn": 1}
    assert (await feedback.counts(frames=False))["confirmed"] == {}


async def test_feedback_that_names_no_single_target_is_refused(backend: Backend) -> None:
    feedback = backend.feedback()
    with pytest.raises(FeedbackError, match="exactly one"):
        await feedback.record({"kind": "missed", "segment_id": SEGMENT, "incident_id": "i"})
    with pytest.raises(FeedbackError, match="kind"):
        await feedback.record({"kind": "maybe", "segment_id": SEGMENT})
    assert await feedback.entries() == []
