"""The pipeline judges every segment, the partial tail included, even on failure."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest

from streamguard.config.ingest import EncodingConfig
from streamguard.core.chunk import SAMPLE_RATE, AudioChunk
from streamguard.core.errors import SourceError
from streamguard.core.segment import Segment, SegmentFlag
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.streams.pipeline import SegmentResult, StreamPipeline
from streamguard.testing.engines import ToneEngine

T0 = datetime(2026, 11, 22, tzinfo=UTC)


async def chunks(levels: list[int], fail_after: bool = False) -> AsyncIterator[AudioChunk]:
    """One second per level: silence (0) or the 1 kHz marker tone the test engine blocks."""
    for i, level in enumerate(levels):
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        samples = (np.sin(2 * np.pi * 1000 * t) * level).astype(np.int16)
        yield AudioChunk(samples, T0 + timedelta(seconds=i))
    if fail_after:
        raise SourceError("connection refused")


def pipeline(tmp_path: Path, engine: ToneEngine, results: list[SegmentResult]) -> StreamPipeline:
    async def collect(result: SegmentResult) -> None:
        results.append(result)

    return StreamPipeline(
        stream_id="room-7",
        attached_at=T0,
        segment_seconds=15,
        encoding=EncodingConfig(format="wav"),
        clip_dir=tmp_path,
        engine=engine,
        on_result=collect,
    )


async def test_every_segment_is_judged_in_order_with_its_clip(tmp_path: Path) -> None:
    engine, results = ToneEngine(), list[SegmentResult]()
    await pipeline(tmp_path, engine, results).run(chunks([0] * 15 + [9000] * 15 + [0] * 4))
    assert [r.segment.seq for r in results] == [0, 1, 2]
    assert [r.verdict.outcome for r in results] == [
        Outcome.NO_SPEECH,
        Outcome.MODERATED,
        Outcome.NO_SPEECH,
    ]
    assert results[1].verdict.suggestion is Suggestion.BLOCK
    assert SegmentFlag.PARTIAL in results[-1].segment.flags
    assert results[-1].segment.duration == 4.0
    # The engine judges samples: only the risky segment is encoded, as evidence.
    assert [r.clip is not None for r in results] == [False, True, False]
    assert results[1].clip is not None
    assert results[1].clip.path.exists()
    assert sorted(os.listdir(tmp_path)) == [f"{results[1].segment.id}.wav"]
    for result in results:
        assert result.verdict.segment_id == result.segment.id
    assert engine.judged == [r.segment.id for r in results]


async def test_a_flac_evidence_clip_is_the_segment_itself_losslessly(tmp_path: Path) -> None:
    """A FLAC evidence clip (a sixth of LAME's CPU): decoded by PyAV it is the segment's
    samples, bit for bit, and nothing else was encoded."""
    engine, results = ToneEngine(), list[SegmentResult]()

    async def collect(result: SegmentResult) -> None:
        results.append(result)

    stream = StreamPipeline(
        stream_id="room-7",
        attached_at=T0,
        segment_seconds=15,
        encoding=EncodingConfig(format="flac"),
        clip_dir=tmp_path,
        engine=engine,
        on_result=collect,
    )
    await stream.run(chunks([0] * 15 + [9000] * 12 + [3000] * 3))
    risky = results[1]
    assert risky.clip is not None
    assert risky.clip.format == "flac"
    assert sorted(os.listdir(tmp_path)) == [f"{risky.segment.id}.flac"]
    with av.open(str(risky.clip.path)) as container:
        decoded = np.concatenate(
            [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
        )
    assert isinstance(risky.segment, Segment)
    assert len(decoded) == risky.clip.samples == 15 * SAMPLE_RATE
    assert np.array_equal(decoded, risky.segment.samples)


async def test_source_failure_still_judges_what_was_heard(tmp_path: Path) -> None:
    engine, results = ToneEngine(), list[SegmentResult]()
    with pytest.raises(SourceError, match="connection refused"):
        await pipeline(tmp_path, engine, results).run(chunks([9000] * 20, fail_after=True))
    assert [r.segment.duration for r in results] == [15.0, 5.0]
    assert all(r.verdict.suggestion is Suggestion.BLOCK for r in results)


class StuckEngine(ToneEngine):
    """Never answers: a verdict that cannot arrive before the shutdown deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.judging = asyncio.Event()

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        self.judged.append(segment.id)
        self.judging.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_cancelled_pipeline_records_every_segment_without_a_verdict(tmp_path: Path) -> None:
    engine, results = StuckEngine(), list[SegmentResult]()
    stream = pipeline(tmp_path, engine, results)
    # 6 full segments: one being judged, four in the queue, one cut and waiting for room.
    task = asyncio.create_task(stream.run(chunks([9000] * 100)), name="stream[room-7]")
    await engine.judging.wait()
    while stream.segments_cut < 6:  # noqa: ASYNC110 - the pipeline offers no event for this
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.abandon("shutdown deadline passed before a verdict")
    assert [r.segment.seq for r in results] == list(range(6))
    assert all(r.segment.duration == 15.0 for r in results)
    assert all(r.verdict.outcome is Outcome.FAILED for r in results)
    assert {r.verdict.reason for r in results} == {"shutdown deadline passed before a verdict"}


async def test_abandon_also_records_the_uncut_tail(tmp_path: Path) -> None:
    engine, results = StuckEngine(), list[SegmentResult]()
    stream = pipeline(tmp_path, engine, results)
    all_heard = asyncio.Event()

    async def audio() -> AsyncIterator[AudioChunk]:
        async for chunk in chunks([9000] * 20):
            yield chunk
        all_heard.set()
        await asyncio.Event().wait()  # a live source: more audio may come

    task = asyncio.create_task(stream.run(audio()), name="stream[room-7]")
    await all_heard.wait()
    await engine.judging.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.abandon("shutdown")
    assert [r.segment.duration for r in results] == [15.0, 5.0]


class HeldEngine(ToneEngine):
    """Judges several segments at once, as AMS does; the first one's answer is held."""

    segments_in_flight = 3

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        if segment.seq == 0:
            await self.release.wait()
        return await super().moderate(segment, biz_type=biz_type)


async def test_a_slow_verdict_does_not_hold_back_the_next_segments(tmp_path: Path) -> None:
    engine, results = HeldEngine(), list[SegmentResult]()
    stream = pipeline(tmp_path, engine, results)
    task = asyncio.create_task(stream.run(chunks([9000] * 45)), name="stream[room-7]")
    async with asyncio.timeout(10):  # one at a time, this would wait for segment 0 forever
        while len(results) < 2:  # noqa: ASYNC110 - the pipeline offers no event for this
            await asyncio.sleep(0.01)
    # Judged while segment 0 waits (the two in flight may finish in either order).
    assert sorted(r.segment.seq for r in results) == [1, 2]
    engine.release.set()
    await task
    assert [r.segment.seq for r in results][2:] == [0]
    assert all(r.verdict.suggestion is Suggestion.BLOCK for r in results)


class StuckSeveral(StuckEngine):
    segments_in_flight = 3


async def test_abandon_records_every_segment_in_flight(tmp_path: Path) -> None:
    engine, results = StuckSeveral(), list[SegmentResult]()
    stream = pipeline(tmp_path, engine, results)
    # 8 full segments: three with the engine, four in the queue, one waiting for room.
    task = asyncio.create_task(stream.run(chunks([9000] * 150)), name="stream[room-7]")
    async with asyncio.timeout(10):
        while stream.segments_cut < 8 or len(engine.judged) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.abandon("shutdown")
    assert sorted(engine.judged) == [r.segment.id for r in results[:3]]
    assert [r.segment.seq for r in results] == list(range(8))
    assert {r.verdict.outcome for r in results} == {Outcome.FAILED}
