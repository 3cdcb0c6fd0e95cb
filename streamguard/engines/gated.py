"""The speech gate in front of a billed engine: silent segments never reach it.

Voice rooms are mostly silence; AMS bills every audio minute it is sent. ``GatedEngine``
judges silent segments itself (Pass, outcome ``no_speech``, reason "no speech"), sends only
the speech of the rest (each speech run padded by ``pad`` seconds, longer pauses shortened to
``2 * pad``, joined into one clip), and counts the seconds it kept from the bill. If the gate
fails it fails open: the whole segment is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from streamguard.core.excerpt import Excerpt
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Verdict
from streamguard.engines.gate import SpeechDetector, SpeechReport

__all__ = ["GatedEngine", "SpanEngine"]


class SpanEngine(Protocol):
    """An engine that can be sent only part of a segment (``AmsEngine``)."""

    name: str
    version: str
    segments_in_flight: int

    async def moderate(
        self,
        segment: Segment,
        *,
        biz_type: str | None = None,
        speech: Sequence[tuple[float, float]] | None = None,
    ) -> Verdict: ...

    async def aclose(self) -> None: ...


class GatedEngine:
    """``inner`` behind a speech gate; an ``Engine`` itself."""

    def __init__(self, inner: SpanEngine, gate: SpeechDetector, *, pad: float = 0.15) -> None:
        self.inner = inner
        self.gate = gate
        self.pad = pad
        self.name = inner.name
        self.version = inner.version
        self.segments_in_flight = inner.segments_in_flight
        self.seconds_saved = 0.0
        """Audio seconds not sent to the billed engine: silent segments and silent edges."""
        self.gate_failures = 0

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        """Judge silence here; send speech (just its span) to the billed engine."""
        try:
            report: SpeechReport = await asyncio.to_thread(self.gate.detect, segment.samples)
        except Exception as exc:  # the gate is a model: whatever it raises, fail open
            self.gate_failures += 1
            verdict = await self.inner.moderate(segment, biz_type=biz_type)
            note = {"gate_error": f"{type(exc).__name__}: {exc}"}
            return _with_details(verdict, note)
        if not report.has_speech:
            self.seconds_saved += segment.duration
            return Verdict(
                segment_id=segment.id,
                outcome=Outcome.NO_SPEECH,
                engine=self.name,
                engine_version=self.version,
                reason="no speech",
                details={"gate": report.to_json()},
            )
        runs = [(run.start, run.end) for run in report.runs or report.regions]
        excerpt = Excerpt.around(runs, segment.duration, pad=self.pad)
        if excerpt is None or excerpt.is_whole(segment.duration):
            verdict = await self.inner.moderate(segment, biz_type=biz_type)
        else:
            self.seconds_saved += segment.duration - excerpt.duration
            verdict = await self.inner.moderate(segment, biz_type=biz_type, speech=excerpt.pieces)
        return _with_details(verdict, {"gate": report.to_json()})

    async def aclose(self) -> None:
        await self.inner.aclose()


def _with_details(verdict: Verdict, extra: Mapping[str, object]) -> Verdict:
    return replace(verdict, details={**verdict.details, **extra})
