"""One stream's path from decoded audio to judged segments: segmenter → engine → encoder.

Engines judge the samples (AMS writes the WAV excerpt it sends itself); only the segments
found risky are encoded afterwards, as evidence — voice rooms are mostly safe, so most
segments are never encoded.

The source hands in ``AudioChunk``s; every segment the segmenter cuts is judged, and handed
to ``on_result`` with its verdict and, when risky, its clip. Ingest and moderation run as two
named tasks joined by a bounded queue, so a slow engine slows a file down instead of
filling memory, and the partial tail is always judged when the audio ends. Up to the
engine's ``segments_in_flight`` segments are judged at once (AMS: several, so one slow
task does not hold the stream back; the local engine: one, in order); results are handed
on one at a time, as they are ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from streamguard.config.ingest import EncodingConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import EncodeError, StreamGuardError
from streamguard.core.private import private_dir
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.engines.base import Engine
from streamguard.ingest.encoder import Clip, encode_clip
from streamguard.ingest.segmenter import Segmenter

__all__ = ["SegmentResult", "StreamPipeline"]


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """A segment, its encoded clip (None if encoding failed) and the verdict on it; a
    segment cut by the service itself (AMS live mode) comes without its audio."""

    segment: Segment | SegmentInfo
    clip: Clip | None
    verdict: Verdict


class StreamPipeline:
    """Cuts, encodes and judges one stream's audio; owns its two tasks."""

    def __init__(
        self,
        *,
        stream_id: str,
        attached_at: datetime,
        segment_seconds: int,
        encoding: EncodingConfig,
        clip_dir: Path,
        engine: Engine,
        on_result: Callable[[SegmentResult], Awaitable[None]],
        biz_type: Callable[[], str | None] = lambda: None,
        queue_size: int = 4,
        heard_until: datetime | None = None,
    ) -> None:
        self._stream_id = stream_id
        self._segmenter = Segmenter(
            stream_id, attached_at, segment_seconds, heard_until=heard_until
        )
        self._encoding = encoding
        self._clip_dir = clip_dir
        self._engine = engine
        self._on_result = on_result
        self._biz_type = biz_type
        self._queue: asyncio.Queue[Segment | None] = asyncio.Queue(maxsize=queue_size)
        self._judging: dict[str, Segment] = {}  # with the engine, by id, oldest first
        self._undelivered: list[SegmentResult] = []  # judged, not yet handed on in full
        self._delivery = asyncio.Lock()
        self._unqueued: list[Segment] = []  # cut, waiting for room in the queue
        self.segments_cut = 0

    @property
    def pending_seconds(self) -> float:
        """Audio heard but not yet cut into a segment."""
        return self._segmenter.pending_seconds

    async def run(self, chunks: AsyncIterable[AudioChunk]) -> None:
        """Consume ``chunks`` until they end; return once every segment has a result.

        If the source fails, the audio heard before the failure is still cut (as a partial
        tail), judged and handed on before the error is raised.
        """
        private_dir(self._clip_dir)
        failure: list[StreamGuardError] = []
        async with asyncio.TaskGroup() as group:
            group.create_task(self._cut(chunks, failure), name=f"stream[{self._stream_id}].segment")
            group.create_task(self._judge(), name=f"stream[{self._stream_id}].moderate")
        if failure:
            raise failure[0]

    async def _cut(
        self, chunks: AsyncIterable[AudioChunk], failure: list[StreamGuardError]
    ) -> None:
        try:
            async for chunk in chunks:
                await self._put(self._segmenter.push(chunk))
        except StreamGuardError as exc:
            failure.append(exc)
        tail = self._segmenter.flush()
        await self._put([tail] if tail is not None else [])
        await self._queue.put(None)

    async def _put(self, segments: list[Segment]) -> None:
        """Queue cut segments; until queued they wait in ``_unqueued`` (see ``abandon``)."""
        self.segments_cut += len(segments)
        self._unqueued.extend(segments)
        while self._unqueued:
            await self._queue.put(self._unqueued[0])
            self._unqueued.pop(0)

    async def _encode(self, segment: Segment) -> Clip:
        path = self._clip_dir / f"{segment.id}.{self._encoding.format}"
        return await encode_clip(
            segment.samples, path, self._encoding.format, self._encoding.bitrate
        )

    async def abandon(self, reason: str) -> None:
        """After ``run`` was cancelled: record every segment still without a verdict (those
        being judged, the queued ones, the audio not yet cut) as failed with ``reason``."""
        undelivered, self._undelivered = self._undelivered, []
        for result in undelivered:  # judged, but its delivery was cut short: finish it
            await self._on_result(result)
        left = list(self._judging.values())
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None:
                left.append(queued)
        left += self._unqueued
        tail = self._segmenter.flush()
        if tail is not None:
            self.segments_cut += 1
            left.append(tail)
        self._judging, self._unqueued = {}, []
        for segment in left:
            verdict = Verdict(
                segment_id=segment.id,
                outcome=Outcome.FAILED,
                engine=self._engine.name,
                engine_version=self._engine.version,
                reason=reason,
            )
            await self._on_result(SegmentResult(segment, None, verdict))

    async def _judge(self) -> None:
        slots = asyncio.Semaphore(self._engine.segments_in_flight)
        async with asyncio.TaskGroup() as group:
            while True:
                await slots.acquire()
                segment = await self._queue.get()
                if segment is None:
                    break
                self._judging[segment.id] = segment
                group.create_task(
                    self._judge_one(segment, slots),
                    name=f"stream[{self._stream_id}].moderate[{segment.seq}]",
                )

    async def _judge_one(self, segment: Segment, slots: asyncio.Semaphore) -> None:
        try:
            clip, verdict = await self._verdict(segment)
        finally:
            slots.release()
        result = SegmentResult(segment, clip, verdict)
        del self._judging[segment.id]
        self._undelivered.append(result)
        async with self._delivery:
            await self._on_result(result)
        self._undelivered.remove(result)

    async def _verdict(self, segment: Segment) -> tuple[Clip | None, Verdict]:
        clip: Clip | None = None
        verdict = await self._engine.moderate(segment, biz_type=self._biz_type())
        if verdict.hit or verdict.suggestion is not Suggestion.PASS:
            try:  # evidence of a risky segment; safe ones are never encoded
                clip = await self._encode(segment)
            except EncodeError as exc:
                verdict = replace(verdict, reason=f"{verdict.reason}; no clip: {exc}")
        return clip, verdict
