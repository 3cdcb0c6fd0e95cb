"""A deterministic engine fake at our own seam (``streamguard.engines.base.Engine``).

It judges real decoded audio by simple rules: quiet audio has no speech; audio dominated by
a 1 kHz marker tone is an "Abuse" hit with a keyword from a test library; anything else
loud is clean speech. The emulator in tests and the AMS benchmark use it where the local
engine would judge.
"""

from __future__ import annotations

import numpy as np

from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.segment import Segment
from streamguard.core.verdict import KeywordHit, Outcome, Suggestion, Verdict

__all__ = ["ToneEngine"]

MARKER_HZ = 1000.0
TRANSCRIPT = "you said marker word"


class ToneEngine:
    """Block when a 1 kHz tone dominates, no speech when quiet, Pass otherwise."""

    name = "tone-fake"
    version = "1"
    segments_in_flight = 1

    def __init__(self, silence_rms: float = 300.0) -> None:
        self.silence_rms = silence_rms
        self.judged: list[str] = []
        self.closed = False

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        self.judged.append(segment.id)
        samples = segment.samples.astype(np.float64)
        rms = float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
        if rms < self.silence_rms:
            return Verdict(
                segment_id=segment.id,
                outcome=Outcome.NO_SPEECH,
                engine=self.name,
                engine_version=self.version,
                reason="no speech",
            )
        spectrum = np.abs(np.fft.rfft(samples)) ** 2
        freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
        band = (freqs > MARKER_HZ - 20) & (freqs < MARKER_HZ + 20)
        if spectrum[band].sum() > 0.5 * spectrum.sum():
            start = TRANSCRIPT.index("marker")
            return Verdict(
                segment_id=segment.id,
                outcome=Outcome.MODERATED,
                engine=self.name,
                engine_version=self.version,
                suggestion=Suggestion.BLOCK,
                label="Abuse",
                sub_label="Insult",
                score=91,
                hit=True,
                text=TRANSCRIPT,
                keywords=(
                    KeywordHit(
                        keyword="marker",
                        library_id="lib-test-1",
                        library_name="test library",
                        label="Abuse",
                        sub_label="Insult",
                        score=91,
                        text_start=start,
                        text_end=start + len("marker"),
                    ),
                ),
            )
        return Verdict(
            segment_id=segment.id,
            outcome=Outcome.MODERATED,
            engine=self.name,
            engine_version=self.version,
            text="hello there",
        )

    async def aclose(self) -> None:
        self.closed = True
