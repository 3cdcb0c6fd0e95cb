"""Engines we own for tests of the stages around an engine (a fake at our own seam)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamguard.engine.verdict import Outcome, Suggestion, Verdict
from streamguard.ingest.segment import Segment

__all__ = ["LoudnessEngine"]


class LoudnessEngine:
    """Blocks segments whose RMS exceeds a threshold; records what it was asked to judge."""

    name = "loudness"
    version = "test"

    def __init__(self, threshold: float = 1000.0) -> None:
        self.threshold = threshold
        self.seen: list[tuple[str, Path | None]] = []

    async def moderate(self, segment: Segment, clip: Path | None) -> Verdict:
        self.seen.append((segment.id, clip))
        rms = float(np.sqrt(np.mean(segment.samples.astype(np.float64) ** 2)))
        loud = rms > self.threshold
        return Verdict(
            segment_id=segment.id,
            outcome=Outcome.MODERATED,
            engine=self.name,
            engine_version=self.version,
            suggestion=Suggestion.BLOCK if loud else Suggestion.PASS,
            label="Abuse" if loud else "Normal",
            score=min(100, int(rms / 100)),
            hit=loud,
        )

    async def aclose(self) -> None:
        return None
