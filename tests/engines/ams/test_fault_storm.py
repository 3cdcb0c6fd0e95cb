"""Issue 12, "done when": a stream on the AMS engine, with the real pipeline pieces
(segmenter, pipeline, engine, clip server, callbacks, SQLite tracking), runs against an
emulator that serves every fault mode in turn. Every segment ends moderated or failed with
a reason: none lost, none passed where AMS blocked, and no loop of the engine crashes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamguard.config.ingest import EncodingConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.supervisor import Supervisor
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.emulator.faults import Faults, Shape
from streamguard.engines.ams.engine import AmsEngine
from streamguard.state.ams_tasks import SegmentState
from streamguard.state.db import Database
from streamguard.streams.pipeline import SegmentResult, StreamPipeline
from tests.support.ams import AmsStack, ams_stack, engine_config
from tests.support.audio import noise, tone

T0 = datetime(2026, 11, 28, 12, tzinfo=UTC)
SEGMENT = 15

MODES: list[tuple[str, Faults]] = [
    ("throttle", Faults(throttle=0.5, seed=1)),
    ("server errors", Faults(server_errors=0.5, seed=2)),
    ("internal errors", Faults(internal_errors=0.5, seed=3)),
    ("hung answers", Faults(hangs=0.4, hang_seconds=2.5, seed=4)),
    ("latency", Faults(latency=0.3)),
    ("stuck task", Faults(stuck_first=1)),
    ("error tasks", Faults(error_first=3)),
    ("lost task", Faults(lost_first=1)),
    ("refused task", Faults(refused_first=1)),
    *((f"shape {shape.value}", Faults(shapes=frozenset({shape}))) for shape in Shape),
    ("page-size cap", Faults(page_limit=3)),
    ("huge answers", Faults(padding_bytes=2 * 1024 * 1024)),
    ("storm", Faults(throttle=0.2, internal_errors=0.1, errors=0.2, stuck=0.1, seed=5)),
]


async def audio(stack: AmsStack) -> AsyncIterator[AudioChunk]:
    """One segment per fault mode, tone (blocked) and noise (clean speech) in turn; the
    emulator serves each mode from the start of its segment's audio until AMS has a task
    for that segment (or 5 s have passed), so the segment's Create meets it."""
    for index, (_, faults) in enumerate(MODES):
        stack.emulator.faults = faults
        kind = tone if index % 2 == 0 else noise
        for second in range(SEGMENT):
            at = T0 + timedelta(seconds=index * SEGMENT + second)
            samples = kind(1.0) if kind is tone else noise(1.0, seed=index * 100 + second)
            yield AudioChunk(samples, at)
        created = stack.emulator.stats.tasks_by_data_id
        for _ in range(50):
            if len(created) > index:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)  # and the polls and callbacks that follow
    stack.emulator.faults = Faults()  # the storm passes: late polls find AMS well again


@pytest.mark.slow
async def test_every_segment_ends_moderated_or_failed_under_every_fault(tmp_path: Path) -> None:
    results: list[SegmentResult] = []
    crashes: list[str] = []

    async def collect(result: SegmentResult) -> None:
        results.append(result)

    async def crashed(name: str, exc: BaseException) -> None:
        crashes.append(f"{name}: {exc!r}")

    async with (
        ams_stack(tmp_path / "clips", request_timeout=1.5, attempts=3) as stack,
        Database(tmp_path / "state.db") as db,
        Supervisor() as supervisor,
    ):
        supervisor.report_to(crashed)
        config = engine_config(stack.emulator.url, task_deadline=8.0, request_timeout=1.5)
        async with (
            AmsEngine(
                config, db, client=stack.client, clips=stack.clips, supervisor=supervisor
            ) as engine,
            asyncio.timeout(120),
        ):
            pipeline = StreamPipeline(
                stream_id="storm-room",
                attached_at=T0,
                segment_seconds=SEGMENT,
                encoding=EncodingConfig(format="wav"),
                clip_dir=tmp_path / "evidence",
                engine=engine,
                on_result=collect,
            )
            await pipeline.run(audio(stack))
            counts = await engine.store.counts()
            loops = {name: loop.crashes for name, loop in supervisor.loops.items()}

    assert len(results) == len(MODES)
    assert sorted(r.segment.seq for r in results) == list(range(len(MODES)))
    for result in results:
        verdict = result.verdict
        assert verdict.segment_id == result.segment.id
        assert verdict.outcome in (Outcome.MODERATED, Outcome.FAILED), verdict
        if verdict.outcome is Outcome.FAILED:
            assert verdict.reason, verdict
        elif result.segment.seq % 2 == 0:  # tone: AMS blocked it (maybe misspelt)
            assert verdict.suggestion is not Suggestion.PASS, (MODES[result.segment.seq], verdict)
    moderated = [r for r in results if r.verdict.outcome is Outcome.MODERATED]
    assert len(moderated) >= len(MODES) // 2  # the faults are survivable: most get judged
    assert set(counts) <= SegmentState.TERMINAL  # nothing left pending or queued
    assert sum(counts.values()) == len(MODES)
    # a stuck and a lost task never finish: their segments failed at the deadline, saying so
    reasons = [r.verdict.reason for r in results if r.verdict.outcome is Outcome.FAILED]
    assert any("still RUNNING" in reason for reason in reasons), reasons
    assert any("could not be polled" in reason for reason in reasons), reasons
    assert crashes == []
    assert set(loops.values()) == {0}
