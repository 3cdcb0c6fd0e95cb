"""One "try it" run: the configured engine on one recording, read once, nothing kept.

The audio goes through the same path as a stream's (``Source`` on its own reader thread →
``StreamPipeline``: segmenter → engine), and each verdict is decided under the profile
asked for (``Outcomes.decide``, the policy's one entry point) — but the results are not
recorded, no incident is opened and nothing is alerted: it is a test, and a test must not
page a moderator nor count in usage. The clips the pipeline encodes for risky segments live
in a temporary directory removed with the run.

Bounded: at most ``max_audio_seconds`` of audio is read (the rest is left, and the report
says so) and the whole run takes at most ``budget_seconds`` (segments not judged by then
are reported failed with the reason).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from streamguard.config.ingest import EncodingConfig, IngestConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import SourceError
from streamguard.core.verdict import Verdict
from streamguard.engines.base import Engine
from streamguard.ingest.source import Source
from streamguard.moderation.policy import Decision
from streamguard.streams.pipeline import SegmentResult, StreamPipeline

__all__ = ["TryEngine", "TryLimits", "TryReport", "TrySegment", "try_source"]


class TrySegment(BaseModel):
    """One segment of the audio tried, its verdict and the policy's decision on it."""

    seq: int = Field(ge=0)
    start: float = Field(description="Seconds from the start of the audio.")
    end: float = Field(description="Seconds from the start of the audio.")
    outcome: Literal["moderated", "no_speech", "skipped_overloaded", "failed", "not_moderated"]
    suggestion: Literal["Pass", "Review", "Block"]
    label: str
    sub_label: str
    score: int
    risk: Literal["none", "low", "medium", "high"]
    would_alert: bool = Field(description="Whether a live room would have raised an alert.")
    text: str = Field(description="The transcript (empty when nothing was recognised).")
    keywords: list[dict[str, Any]] = Field(description="Keyword hits that count, with offsets.")
    reason: str


class TryReport(BaseModel):
    """What the engine made of the audio; nothing of it is stored."""

    source: str = Field(description="The file's name or the URL (passwords redacted).")
    profile: str
    engine: str
    segment_seconds: int
    seconds_heard: float = Field(ge=0)
    truncated: bool = Field(description="Audio past the limit was not read or not judged.")
    error: str | None = Field(description="Why reading stopped early, if it did.")
    segments: list[TrySegment]


@dataclass(frozen=True, slots=True)
class TryLimits:
    """How much one try may cost."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_audio_seconds: float = 600.0
    budget_seconds: float = 300.0
    concurrent: int = 1
    """Tries at once; one more is refused with 429 (they spend the engine's CPU)."""


@dataclass(frozen=True, slots=True)
class TryEngine:
    """The daemon's engine, the risk decision and a profile's AMS BizType."""

    engine: Engine
    decision: Callable[[StreamConfig, Verdict], Decision]
    """``Outcomes.decide``: the policy's one entry point (nothing is recorded or alerted)."""
    biz_type: Callable[[StreamConfig], str | None]
    encoding: EncodingConfig
    default_segment_seconds: int


class _Capped:
    """The source's chunks until ``limit`` seconds were heard; then it is detached."""

    def __init__(self, source: Source, limit: float) -> None:
        self._chunks: AsyncIterator[AudioChunk] = aiter(source)
        self._source = source
        self._limit = limit
        self.heard = 0.0
        self.capped = False

    def __aiter__(self) -> _Capped:
        return self

    async def __anext__(self) -> AudioChunk:
        if self.heard >= self._limit:
            self.capped = True
            self._source.detach()
            raise StopAsyncIteration
        chunk = await anext(self._chunks)
        self.heard += chunk.duration
        return chunk


async def try_source(
    where: str | os.PathLike[str],
    stream: StreamConfig,
    *,
    ingest: IngestConfig,
    judge: TryEngine,
    limits: TryLimits,
    work_dir: Path,
) -> TryReport:
    """Judge the recording at ``where`` as ``stream`` would be judged; raise ``SourceError``
    when it brings no audio at all (not a media file, no audio track, unreachable)."""
    seconds = stream.segment_seconds or judge.default_segment_seconds
    source = Source(where, ingest, stream.id, live=False)
    results: list[SegmentResult] = []

    async def collect(result: SegmentResult) -> None:
        results.append(result)

    pipeline = StreamPipeline(
        stream_id=stream.id,
        attached_at=source.attached_at,
        segment_seconds=seconds,
        encoding=judge.encoding,
        clip_dir=work_dir / "clips",
        engine=judge.engine,
        on_result=collect,
        biz_type=lambda: judge.biz_type(stream),
    )
    error: str | None = None
    timed_out = False
    async with source:
        chunks = _Capped(source, limits.max_audio_seconds)
        try:
            async with asyncio.timeout(limits.budget_seconds):
                await pipeline.run(chunks)
        except TimeoutError:
            timed_out = True
            await pipeline.abandon(f"not judged within the {limits.budget_seconds:g} s budget")
        except SourceError as exc:
            if not results:
                raise
            error = str(exc)
    segments = [_segment(r, stream, judge) for r in sorted(results, key=lambda r: r.segment.seq)]
    return TryReport(
        source="",
        profile=stream.profile,
        engine=f"{judge.engine.name} {judge.engine.version}",
        segment_seconds=seconds,
        seconds_heard=round(chunks.heard, 3),
        truncated=chunks.capped or timed_out,
        error=error,
        segments=segments,
    )


def _segment(result: SegmentResult, stream: StreamConfig, judge: TryEngine) -> TrySegment:
    segment, verdict = result.segment, result.verdict
    decision = judge.decision(stream, verdict)
    start = (segment.started_at - segment.attached_at).total_seconds()
    return TrySegment(
        seq=segment.seq,
        start=round(start, 3),
        end=round(start + segment.duration, 3),
        outcome=verdict.outcome.value,
        suggestion=decision.suggestion.value,
        label=decision.label,
        sub_label=decision.sub_label,
        score=decision.score,
        risk=decision.risk.value,
        would_alert=decision.alerts,
        text=verdict.text,
        keywords=[k.to_json() for k in decision.keywords],
        reason=verdict.reason or decision.reason,
    )
