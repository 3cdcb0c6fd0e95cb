"""Builders of the inputs alerting consumes (segments, verdicts, streams) and a recording sink."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np

from streamguard.config.streams import StreamConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.segment import Segment
from streamguard.core.status import StreamEvent, StreamStatus
from streamguard.core.verdict import KeywordHit, Outcome, Suggestion, Verdict
from streamguard.moderation.alert import Alert

__all__ = ["ATTACHED_AT", "RecordingSink", "risky", "segment", "stream"]

ATTACHED_AT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SEGMENT_SECONDS = 15


def stream(
    stream_id: str = "s1", room: str = "room-1", profile: str = "default", **metadata: str
) -> StreamConfig:
    """A stream config as the daemon would hold it."""
    return StreamConfig(
        id=stream_id, url="http://127.0.0.1/x", room=room, profile=profile, metadata=metadata
    )


def segment(stream_id: str = "s1", seq: int = 0) -> Segment:
    """The ``seq``-th 15 s segment of a stream (one second of real samples is enough here)."""
    start = ATTACHED_AT + timedelta(seconds=SEGMENT_SECONDS * seq)
    return Segment(
        stream_id=stream_id,
        seq=seq,
        attached_at=ATTACHED_AT,
        samples=np.zeros(SAMPLE_RATE, dtype=np.int16),
        started_at=start,
        ended_at=start + timedelta(seconds=SEGMENT_SECONDS),
        media_start=float(SEGMENT_SECONDS * seq),
        gap_before=0.0,
        flags=frozenset(),
    )


def risky(
    seg: Segment,
    label: str = "Abuse",
    score: int = 95,
    keywords: tuple[KeywordHit, ...] = (),
    outcome: Outcome = Outcome.MODERATED,
    text: str = "you are an idiot",
    reason: str = "",
) -> Verdict:
    """A verdict on ``seg`` hitting ``label`` with ``score``."""
    return Verdict(
        segment_id=seg.id,
        outcome=outcome,
        engine="local",
        engine_version="test",
        suggestion=Suggestion.BLOCK if score >= 90 else Suggestion.REVIEW,
        label=label,
        sub_label="Insult",
        score=score,
        hit=True,
        text=text,
        keywords=keywords,
        task_id=f"task-{seg.id}",
        reason=reason,
    )


class RecordingSink:
    """An ``AlertSink`` that keeps what it is given (a fake at a seam we own)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.events: list[StreamEvent] = []
        self.statuses: list[StreamStatus] = []
        self.changed = asyncio.Event()

    async def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self.changed.set()

    async def event(self, event: StreamEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def status(self, status: StreamStatus) -> None:
        self.statuses.append(status)
        self.changed.set()
