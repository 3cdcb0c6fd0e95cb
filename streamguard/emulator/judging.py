"""Judging slices with any ``Engine``, as slowly as AMS would."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.errors import StreamGuardError
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Verdict
from streamguard.engines.base import Engine

__all__ = ["UNJUDGED", "SliceJudge", "slice_segment"]

UNJUDGED = frozenset({Outcome.FAILED, Outcome.SKIPPED_OVERLOADED})
"""Outcomes that leave a slice without a verdict: AMS answers with an error instead."""


class SliceJudge:
    """Hands slices to ``engine``; ``processing_factor`` seconds per second of audio paces it."""

    def __init__(self, engine: Engine, processing_factor: float) -> None:
        self.engine = engine
        self.processing_factor = processing_factor

    async def judge(self, segment: Segment) -> Verdict:
        """The engine's verdict; an engine error becomes a FAILED verdict saying why."""
        try:
            return await self.engine.moderate(segment)
        except StreamGuardError as exc:
            return Verdict(
                segment_id=segment.id,
                outcome=Outcome.FAILED,
                engine=self.engine.name,
                engine_version=self.engine.version,
                reason=f"engine error: {exc}",
            )

    async def pace(self, started: float, audio_seconds: float) -> None:
        """Take as long as AMS would (``processing_factor`` times the audio) before answering.

        ``started`` is the ``time.monotonic()`` at which the work began.
        """
        due = started + audio_seconds * self.processing_factor
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


def slice_segment(
    name: str, created: datetime, index: int, samples: Pcm, started: datetime, offset: float
) -> Segment:
    """A slice of a task as the ``Segment`` an engine judges."""
    seconds = len(samples) / SAMPLE_RATE
    return Segment(
        stream_id=name[:40],
        seq=index,
        attached_at=created,
        samples=samples,
        started_at=started,
        ended_at=started + timedelta(seconds=seconds),
        media_start=offset,
        gap_before=0.0,
        flags=frozenset(),
    )
