"""AmsEngine end to end over real HTTP: segments → AMS emulator (which fetches each clip
from the signed clip server and judges it) → verdicts recorded, under faults and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from streamguard.core.chunk import AudioChunk
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.emulator.faults import Faults
from streamguard.engines.ams.clips import ClipStore
from streamguard.engines.ams.engine import AmsEngine
from streamguard.ingest.segmenter import Segmenter
from streamguard.state.ams_tasks import SegmentState
from streamguard.state.db import Database
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.signing import Credentials
from tests.support.ams import SECRET_ID, ams_stack, engine_config, engine_for
from tests.support.audio import make_segment, noise, silence, tone
from tests.support.waiting import eventually

ATTACHED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def live_segments(stream_id: str, pattern: Sequence[str], seconds: int = 15) -> list[Segment]:
    """Cut a 'live' source (1 s chunks of tone or noise) with the real Segmenter."""
    segmenter = Segmenter(stream_id, ATTACHED, seconds)
    segments: list[Segment] = []
    for index, kind in enumerate(pattern):
        for second in range(seconds):
            samples = tone(1.0) if kind == "tone" else noise(1.0, seed=index * 100 + second)
            at = ATTACHED.timestamp() + index * seconds + second
            chunk = AudioChunk(samples, datetime.fromtimestamp(at, UTC))
            segments += segmenter.push(chunk)
    return segments


async def moderate_all(engine: AmsEngine, segments: Sequence[Segment]) -> list[Verdict]:
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(engine.moderate(s), name=f"test.moderate[{s.id}]") for s in segments
        ]
    return [t.result() for t in tasks]


async def test_live_source_segments_get_verdicts_from_fetched_clips(tmp_path: Path) -> None:
    pattern = ["noise", "tone", "noise", "noise", "tone", "noise", "noise", "noise", "noise",
               "tone", "noise", "noise"]  # fmt: skip
    segments = live_segments("room-1", pattern)
    assert len(segments) == 12
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db) as engine,
    ):
        verdicts = await moderate_all(engine, segments)
        rows = await engine.store.counts()
    assert [v.segment_id for v in verdicts] == [s.id for s in segments]
    for verdict, kind in zip(verdicts, pattern, strict=True):
        assert verdict.outcome is Outcome.MODERATED
        assert verdict.engine == "ams"
        assert verdict.task_id
        if kind == "tone":
            assert verdict.suggestion is Suggestion.BLOCK
            assert (verdict.label, verdict.sub_label, verdict.score) == ("Abuse", "Insult", 91)
            assert verdict.text == "you said marker word"
            hit = verdict.keywords[0]
            assert (hit.keyword, hit.library_id, hit.library_name) == (
                "marker", "lib-test-1", "test library",
            )  # fmt: skip
            assert verdict.text[hit.text_start : hit.text_end] == "marker"
            assert hit.time_start == 0.0
            assert verdict.details["slices"][0]["duration"] == 15.0
        else:
            assert verdict.suggestion is Suggestion.PASS
            assert not verdict.hit
    # every clip was fetched by the emulator from the signed URL; ≤10 tasks per Create
    assert stack.clips.fetches == 12
    assert stack.creates >= 2
    assert sum(stack.emulator.stats.tasks_by_data_id.values()) == 12
    assert rows == {SegmentState.DONE: 12}
    assert stack.emulator.stats.callbacks >= 12  # results were pushed, signed with the Seed
    # Pass verdicts came from one DescribeTasks page; details only for the hits
    assert stack.emulator.stats.handled["DescribeTaskDetail"] <= 3 + 3


async def test_callbacks_settle_tasks_without_polling(tmp_path: Path) -> None:
    segments = live_segments("room-cb", ["tone", "noise", "noise"])
    async with (
        ams_stack(tmp_path / "clips", options={"processing_factor": 0.01}) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, callback_grace=60.0) as engine,
    ):
        verdicts = await moderate_all(engine, segments)
        settled = engine.callbacks_settled
    assert [v.suggestion for v in verdicts] == [Suggestion.BLOCK, Suggestion.PASS, Suggestion.PASS]
    assert verdicts[0].keywords[0].keyword == "marker"
    assert settled == 3
    assert stack.emulator.stats.calls["DescribeTasks"] == 0
    assert stack.emulator.stats.calls["DescribeTaskDetail"] == 0


async def test_forged_callbacks_are_refused(tmp_path: Path) -> None:
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db),
    ):
        body = b'{"TaskId": "w-audio-x", "Status": "FINISH", "Suggestion": "Pass"}'
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                stack.clips.callback_url,
                data=body,
                headers={"X-Signature": "0" * 64},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response,
        ):
            status = response.status
    assert status == 403


async def test_only_the_speech_regions_are_sent_and_billed(tmp_path: Path) -> None:
    # Marker tone (the fake's "speech") at 2-5 s and 11-13 s, silence between.
    samples = np.concatenate([silence(2.0), tone(3.0), silence(6.0), tone(2.0), silence(2.0)])
    segment = make_segment("room-span", 3, samples)
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, callbacks=False) as engine,
    ):
        verdict = await engine.moderate(segment, speech=[(2.0, 5.0), (11.0, 13.0)])
        (row,) = await engine.store.in_state(SegmentState.DONE)
    assert verdict.suggestion is Suggestion.BLOCK
    # One task, one 5 s clip: the two pieces joined; the 6 s between them never billed.
    assert stack.emulator.stats.billed_seconds == 5.0
    assert row.duration == 5.0
    assert verdict.details["excerpt"] == [[2.0, 5.0], [11.0, 13.0]]
    # AMS answers in clip time (one slice, 0-5 s); the verdict is in segment time.
    assert [s["offset"] for s in verdict.details["slices"]] == [2.0]
    assert (verdict.keywords[0].time_start, verdict.keywords[0].time_end) == (2.0, 13.0)


async def test_a_60s_segment_is_judged_in_slices(tmp_path: Path) -> None:
    samples = np.concatenate([noise(30.0), tone(30.0)])
    segment = make_segment("room-60", 0, samples)
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, callbacks=False) as engine,  # polled: every slice is shown
    ):
        (verdict,) = await moderate_all(engine, [segment])
    assert verdict.suggestion is Suggestion.BLOCK
    offsets = [s["offset"] for s in verdict.details["slices"]]
    assert offsets == [0.0, 15.0, 30.0, 45.0]
    assert [s["hit"] for s in verdict.details["slices"]] == [False, False, True, True]
    assert {k.time_start for k in verdict.keywords} == {30.0, 45.0}


async def test_throttling_storm_and_5xx_still_give_every_verdict_once(tmp_path: Path) -> None:
    segments = live_segments("room-storm", ["tone", "noise"] * 6)
    faults = Faults(throttle=0.4, server_errors=0.15, internal_errors=0.1, seed=7)
    async with (
        ams_stack(tmp_path / "clips", faults, attempts=4) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, max_submit_attempts=30) as engine,
    ):
        verdicts = await moderate_all(engine, segments)
    assert [v.outcome for v in verdicts] == [Outcome.MODERATED] * 12
    assert [v.suggestion for v in verdicts] == [Suggestion.BLOCK, Suggestion.PASS] * 6
    assert stack.sleeps.delays  # backoff happened (and took no time)
    # 5xx/InternalError on Create leave the outcome unknown; reconciling must not duplicate
    assert set(stack.emulator.stats.tasks_by_data_id.values()) == {1}


async def test_create_timeouts_are_reconciled_not_resubmitted(tmp_path: Path) -> None:
    segments = live_segments("room-hang", ["noise", "tone", "noise"])
    faults = Faults(hangs=1.0)
    async with (
        ams_stack(tmp_path / "clips", faults, request_timeout=0.3) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, request_timeout=0.3) as engine,
    ):
        pending = asyncio.create_task(moderate_all(engine, segments), name="test.moderate")
        await eventually(lambda: stack.creates > 0)
        stack.emulator.faults = Faults()  # the hung Create did create the tasks
        verdicts = await pending
    assert [v.suggestion for v in verdicts] == [Suggestion.PASS, Suggestion.BLOCK, Suggestion.PASS]
    assert stack.creates == 1
    assert set(stack.emulator.stats.tasks_by_data_id.values()) == {1}


async def test_error_task_is_delivered_again_once(tmp_path: Path) -> None:
    segments = live_segments("room-err", ["tone", "noise"])
    async with (
        ams_stack(tmp_path / "clips", Faults(error_first=2)) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db) as engine,
    ):
        verdicts = await moderate_all(engine, segments)
    assert [v.suggestion for v in verdicts] == [Suggestion.BLOCK, Suggestion.PASS]
    assert all(v.outcome is Outcome.MODERATED for v in verdicts)
    assert set(stack.emulator.stats.tasks_by_data_id.values()) == {2}


async def test_error_twice_fails_the_segment_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segment = live_segments("room-404", ["tone"])[0]
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db) as engine,
    ):
        # The clip is not there when AMS fetches it: a real 404 → URL_ERROR, twice.
        gone = stack.clips.url_for(stack.clips.root / "gone.wav")
        monkeypatch.setattr(ClipStore, "url_for", lambda self, row: gone)
        verdict = await engine.moderate(segment)
        row = await engine.store.get(segment.id)
    assert verdict.outcome is Outcome.FAILED
    assert "URL_ERROR" in verdict.reason
    assert "404" in verdict.reason
    assert stack.emulator.stats.tasks_by_data_id[segment.id] == 2
    assert row is not None
    assert row.state == SegmentState.FAILED
    assert row.last_error == verdict.reason


async def test_stuck_task_is_cancelled_and_failed_after_the_deadline(tmp_path: Path) -> None:
    segments = live_segments("room-stuck", ["tone", "noise"])
    async with (
        ams_stack(tmp_path / "clips", Faults(stuck_first=1)) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, task_deadline=0.5) as engine,
    ):
        verdicts = await moderate_all(engine, segments)
    failed = [v for v in verdicts if v.outcome is Outcome.FAILED]
    assert len(failed) == 1
    assert "still RUNNING" in failed[0].reason
    assert "cancelled" in failed[0].reason
    assert stack.emulator.stats.handled["CancelTask"] == 1
    assert stack.emulator.tasks[failed[0].task_id or ""].status == "CANCELLED"
    assert sum(v.outcome is Outcome.MODERATED for v in verdicts) == 1


async def test_restart_mid_flight_polls_again_and_never_resubmits(tmp_path: Path) -> None:
    segments = live_segments("room-restart", ["tone", "noise", "noise", "tone"])
    recovered: list[Verdict] = []
    infos: list[SegmentInfo] = []

    async def collect(verdict: Verdict, segment: SegmentInfo | None) -> None:
        assert segment is not None
        assert segment.id == verdict.segment_id
        recovered.append(verdict)
        infos.append(segment)

    async with ams_stack(tmp_path / "clips", Faults(stuck_first=4)) as stack:
        async with Database(tmp_path / "state.db") as db:
            first = engine_for(stack, db)
            async with first:
                waiting = [
                    asyncio.create_task(first.moderate(s), name=f"test.moderate[{s.seq}]")
                    for s in segments
                ]

                async def all_pending() -> bool:
                    return (await first.store.counts()).get("pending", 0) == 4

                await eventually(all_pending)
            await asyncio.gather(*waiting, return_exceptions=True)  # cancelled by close
        # The "stuck" tasks finish while the daemon is down.
        assert stack.emulator.release_stuck() == 4
        creates_before = stack.creates
        async with Database(tmp_path / "state.db") as db:
            second = AmsEngine(
                engine_config(stack.emulator.url),
                db,
                client=stack.client,
                clips=stack.clips,
                on_verdict=collect,
            )
            async with second:
                await eventually(lambda: len(recovered) == 4)
                again = await second.moderate(segments[0])
    assert stack.creates == creates_before == 1
    assert set(stack.emulator.stats.tasks_by_data_id.values()) == {1}
    by_id = {v.segment_id: v for v in recovered}
    assert [by_id[s.id].suggestion for s in segments] == [
        Suggestion.BLOCK, Suggestion.PASS, Suggestion.PASS, Suggestion.BLOCK,
    ]  # fmt: skip
    assert again == by_id[segments[0].id]
    # Each late verdict comes with its segment as it was heard, for the alert it may raise.
    assert sorted(infos, key=lambda i: i.seq) == [s.info() for s in segments]


async def test_restart_with_create_outcome_unknown_reconciles(tmp_path: Path) -> None:
    segments = live_segments("room-unknown", ["tone", "noise"])
    async with ams_stack(tmp_path / "clips", Faults(hangs=1.0, hang_seconds=30)) as stack:
        async with Database(tmp_path / "state.db") as db:
            first = engine_for(stack, db, request_timeout=20.0)
            async with first:
                waiting = [
                    asyncio.create_task(first.moderate(s), name=f"test.moderate[{s.seq}]")
                    for s in segments
                ]
                await eventually(lambda: stack.creates > 0)
                # killed while the Create call is in flight: rows stay "submitting"
            await asyncio.gather(*waiting, return_exceptions=True)
        stack.emulator.faults = Faults()
        recovered: list[Verdict] = []

        async def collect(verdict: Verdict, segment: SegmentInfo | None) -> None:
            assert segment is not None
            assert segment.id == verdict.segment_id
            recovered.append(verdict)

        async with Database(tmp_path / "state.db") as db:
            states = await db.run(
                lambda c: [r[0] for r in c.execute("SELECT state FROM ams_segments")]
            )
            assert states == [SegmentState.SUBMITTING] * 2
            second = AmsEngine(
                engine_config(stack.emulator.url), db, client=stack.client,
                clips=stack.clips, on_verdict=collect,
            )  # fmt: skip
            async with second:
                await eventually(lambda: len(recovered) == 2)
    assert stack.creates == 1
    assert set(stack.emulator.stats.tasks_by_data_id.values()) == {1}
    assert sorted(v.suggestion for v in recovered) == [Suggestion.BLOCK, Suggestion.PASS]


async def test_sync_mode_judges_each_segment_in_the_call(tmp_path: Path) -> None:
    segments = live_segments("room-sync", ["tone", "noise"])
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, mode="sync") as engine,
    ):
        verdicts = await moderate_all(engine, segments)
        again = await engine.moderate(segments[0])
    assert [v.suggestion for v in verdicts] == [Suggestion.BLOCK, Suggestion.PASS]
    assert verdicts[0].text == "you said marker word"
    assert again == verdicts[0]
    assert stack.emulator.stats.handled["CreateAudioModerationSyncTask"] == 2
    assert stack.creates == 0


async def test_refused_create_fails_segments_with_the_code(tmp_path: Path) -> None:
    segment = make_segment("room-bad", 0, tone(2.0))
    async with (
        ams_stack(tmp_path / "clips") as stack,
        AmsClient(stack.emulator.url, Credentials(SECRET_ID, "wrong-key")) as client,
        Database(tmp_path / "state.db") as db,
        AmsEngine(
            engine_config(stack.emulator.url), db, client=client, clips=stack.clips
        ) as engine,
    ):
        verdict = await engine.moderate(segment)
        row = await engine.store.get(segment.id)
    assert verdict.outcome is Outcome.FAILED
    assert "AMS refused the Create call: AuthFailure.SignatureFailure" in verdict.reason
    assert row is not None
    assert row.state == SegmentState.FAILED
    assert not await asyncio.to_thread(Path(row.clip).exists)  # engine's own WAV is removed
    assert stack.creates == 0
