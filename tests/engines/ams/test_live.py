"""Live mode (issue 12): AMS pulls the stream (Type LIVE_AUDIO, the emulator with our own
ingest), cuts and judges it; its slices become our segments with their verdicts; a task
that ends or errors is created again with backoff; detaching cancels the task; a task an
earlier run left pulling is cancelled."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamguard.cli.check_config import runtime_problems
from streamguard.config import Config
from streamguard.config.ingest import IngestConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.metrics import Metrics
from streamguard.core.segment import SegmentFlag
from streamguard.core.status import StreamState
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.emulator.faults import Faults
from streamguard.engines.ams.engine import AmsEngine
from streamguard.engines.ams.live import JudgedSlice, LiveStream
from streamguard.engines.ams.slices import SliceBook
from streamguard.state.db import Database
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.runner import StreamRunner
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.errors import AmsNetworkError
from streamguard.tencentcloud.models import (
    CreateTasksRequest,
    CreateTasksResponse,
    StorageInfo,
    TaskDetail,
    TaskInput,
)
from tests.emulator.test_emulator import static_server
from tests.support.ams import CREDENTIALS, AmsStack, ams_stack, engine_for
from tests.support.audio import encode, noise, tone

ATTACHED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIMIT = 30.0


@asynccontextmanager
async def live_setup(
    tmp_path: Path,
    faults: Faults | None = None,
    options: dict[str, Any] | None = None,
    **config: Any,
) -> AsyncIterator[tuple[AmsStack, AmsEngine, str]]:
    """Emulator + engine in live mode + an HTTP server with ``room.wav`` (45 s: tone, noise,
    tone, so AMS blocks the first and third slices)."""
    media = tmp_path / "media"
    media.mkdir()
    encode(np.concatenate([tone(15.0), noise(15.0), tone(15.0)]), media / "room.wav")
    settings = {"mode": "live", "live_poll_interval": 0.2, "live_restart_max": 0.2, **config}
    async with (
        static_server(media) as base,
        ams_stack(tmp_path / "clips", faults, options=options) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, **settings) as engine,
        asyncio.timeout(LIMIT),
    ):
        yield stack, engine, f"{base}/room.wav"


async def take(live: LiveStream, count: int) -> list[JudgedSlice]:
    return [await anext(live) for _ in range(count)]


async def test_slices_from_ams_become_segments_with_verdicts(tmp_path: Path) -> None:
    async with live_setup(tmp_path) as (stack, engine, url):
        assert engine.live_mode
        async with engine.live(url, "room-live", ATTACHED, "live_biz") as live:
            judged = await take(live, 3)
        task = next(iter(stack.emulator.tasks.values()))
    assert (task.type, task.url, task.biz_type) == ("LIVE_AUDIO", url, "live_biz")
    assert task.data_id.startswith("room-live-20261128120000-L")
    assert [j.segment.seq for j in judged] == [0, 1, 2]
    assert [j.segment.id for j in judged] == [f"room-live-20261128120000-{i:05d}" for i in range(3)]
    assert [j.verdict.suggestion for j in judged] == [
        Suggestion.BLOCK, Suggestion.PASS, Suggestion.BLOCK,
    ]  # fmt: skip
    assert all(j.verdict.outcome is Outcome.MODERATED for j in judged)
    assert judged[0].verdict.label == "Abuse"
    assert judged[0].verdict.keywords[0].keyword == "marker"
    assert judged[0].verdict.task_id == task.task_id
    assert [j.segment.duration for j in judged] == [15.0, 15.0, 15.0]
    starts = [j.segment.started_at.timestamp() for j in judged]
    assert [b - a for a, b in itertools.pairwise(starts)] == [15.0, 15.0]
    assert all(j.verdict.segment_id == j.segment.id for j in judged)
    assert not any(j.segment.flags for j in judged)


async def test_an_ended_task_is_created_again_with_its_slices_continuing(tmp_path: Path) -> None:
    # The stream is a recording: AMS reaches its end and finishes the task; the stream is
    # still attached, so a new task pulls it again. Ids go on, nothing is handed out twice.
    async with (
        live_setup(tmp_path) as (stack, engine, url),
        engine.live(url, "room-again", ATTACHED) as live,
    ):
        judged = await take(live, 6)
        tasks = sorted(stack.emulator.tasks.values(), key=lambda t: t.seq)
    assert [j.segment.seq for j in judged] == list(range(6))
    assert len(tasks) >= 2
    assert [t.data_id[-4:] for t in tasks[:2]] == ["L001", "L002"]
    assert tasks[0].status == "FINISH"
    assert len({j.segment.id for j in judged}) == 6
    assert [j.verdict.task_id for j in judged[:3]] == [tasks[0].task_id] * 3
    assert judged[3].verdict.task_id == tasks[1].task_id


async def test_a_stream_that_cannot_be_pulled_is_retried_and_says_why(tmp_path: Path) -> None:
    # AMS retries a stream it cannot pull (16 times), then ends the task: here, once.
    async with live_setup(tmp_path, options={"live_reconnects": 1}) as (stack, engine, url):
        async with engine.live(url + ".missing", "room-404", ATTACHED) as live:
            while len(stack.emulator.tasks) < 3:  # noqa: ASYNC110 - the emulator offers no event
                await asyncio.sleep(0.05)
            error = live.last_error
        statuses = {t.status for t in stack.emulator.tasks.values()}
    assert statuses <= {"ERROR", "CANCELLED", "RUNNING", "PENDING"}
    assert "ERROR" in statuses
    assert error is not None
    assert "URL_ERROR" in error


async def test_detaching_cancels_the_task(tmp_path: Path) -> None:
    async with live_setup(tmp_path, Faults(stuck_first=1)) as (stack, engine, url):
        async with engine.live(url, "room-stuck", ATTACHED) as live:
            while live.task_id is None:  # noqa: ASYNC110 - the stream offers no event
                await asyncio.sleep(0.05)
            task_id = live.task_id
            assert stack.emulator.tasks[task_id].status == "RUNNING"
        assert live.state == "stopped"
        assert stack.emulator.tasks[task_id].status == "CANCELLED"
    assert stack.emulator.stats.handled["CancelTask"] == 1


async def test_a_task_an_earlier_run_left_pulling_is_cancelled(tmp_path: Path) -> None:
    async with live_setup(tmp_path, Faults(stuck_first=1)) as (stack, engine, url):
        request = CreateTasksRequest(
            tasks=[TaskInput(data_id="room-old-20261127000000-L001", input=StorageInfo(url=url))],
            type="LIVE_AUDIO",
        )
        orphan = (await stack.client.create_tasks(request)).results[0].task_id
        async with engine.live(url, "room-old", ATTACHED) as live:
            await take(live, 1)
        assert stack.emulator.tasks[orphan].status == "CANCELLED"


async def test_callbacks_bring_slices_with_the_evidence_url_and_dedupe(tmp_path: Path) -> None:
    # AMS's own copy of the slice (AudioResult.Url) is the segment's evidence. A slice
    # learned twice (two callbacks, and polls) is handed out once. The task is stuck: its
    # polled detail holds no slice, the callbacks bring them.
    async with live_setup(tmp_path, Faults(stuck_first=1), live_poll_interval=60) as (
        _,
        engine,
        url,
    ):
        router = engine._callbacks.live if engine._callbacks else {}
        async with engine.live(url, "room-cb", ATTACHED) as live:
            while live.task_id is None:  # noqa: ASYNC110 - the stream offers no event
                await asyncio.sleep(0.05)
            detail = TaskDetail.model_validate(
                {
                    "TaskId": live.task_id,
                    "Status": "RUNNING",
                    "MediaInfo": {"Duration": 15000},
                    "AudioSegments": [
                        {
                            "OffsetTime": "1764331200",
                            "Result": {
                                "Suggestion": "Review",
                                "Label": "Porn",
                                "Score": 80,
                                "Url": "https://cos.example/slice-1.mp3",
                            },
                        },
                        {"OffsetTime": "1764331260", "Result": None},
                    ],
                }
            )
            await router[live.task_id](detail)
            await router[live.task_id](detail)  # again: nothing new
            first, second = await take(live, 2)
            assert live._book.out.empty()
    assert first.evidence_url == "https://cos.example/slice-1.mp3"
    assert first.verdict.suggestion is Suggestion.REVIEW
    assert first.segment.duration == 15.0  # MediaInfo.Duration when the slice names none
    assert first.segment.started_at == datetime.fromtimestamp(1764331200, UTC)
    assert second.verdict.outcome is Outcome.FAILED  # no result: not judged, never a Pass
    assert "no result" in second.verdict.reason
    assert SegmentFlag.GAP_BEFORE in second.segment.flags
    assert second.segment.gap_before == pytest.approx(45.0)


async def test_a_stream_runner_in_live_mode_records_amss_slices_as_its_segments(
    tmp_path: Path,
) -> None:
    # The streams seam: the runner's source is an AMS task. It still owns the stream's
    # status, results (and through them policy, incidents, alerts), and detaching stops it.
    results: list[SegmentResult] = []
    states: list[StreamState] = []

    async def on_result(stream: StreamConfig, result: SegmentResult) -> None:
        results.append(result)

    async def on_state(stream: StreamConfig, state: StreamState, error: str | None) -> None:
        states.append(state)

    async with live_setup(tmp_path, Faults()) as (stack, engine, url):
        runner = StreamRunner(
            StreamConfig(id="room-run", url=url, segment_seconds=15),
            ingest=IngestConfig(),
            engine=engine,
            clip_dir=tmp_path / "evidence",
            on_result=on_result,
            on_state=on_state,
            metrics=Metrics(),
            biz_type=lambda stream: "room_biz",
        )
        running = asyncio.create_task(runner.run(), name="test.stream[room-run]")
        while len(results) < 3:  # noqa: ASYNC110 - the runner offers no event
            await asyncio.sleep(0.05)
        runner.stop()
        await running
        tasks = list(stack.emulator.tasks.values())
    assert [r.segment.seq for r in results[:3]] == [0, 1, 2]
    assert [r.verdict.suggestion for r in results[:3]] == [
        Suggestion.BLOCK, Suggestion.PASS, Suggestion.BLOCK,
    ]  # fmt: skip
    assert all(r.clip is None for r in results)
    assert states[:2] == [StreamState.CONNECTING, StreamState.ONLINE]
    assert states[-1] is StreamState.STOPPED
    assert runner.tally.outcomes["moderated"] == len(results)
    assert {t.biz_type for t in tasks} == {"room_biz"}
    # the task still pulling at detach was cancelled; the others had ended by themselves
    assert {t.status for t in tasks} <= {"FINISH", "CANCELLED"}


class LostAnswerClient(AmsClient):
    """The first Create reaches AMS (the task exists) but its answer is lost on the way."""

    lost = 0

    async def create_tasks(self, request: CreateTasksRequest) -> CreateTasksResponse:
        answer = await super().create_tasks(request)
        if not self.lost:
            self.lost += 1
            raise AmsNetworkError("ClientNetworkError", "the answer was lost", sent=True)
        return answer


async def test_a_create_whose_answer_was_lost_is_adopted_not_duplicated(tmp_path: Path) -> None:
    async with live_setup(tmp_path, Faults(stuck_first=1)) as (stack, engine, url):
        client = LostAnswerClient(stack.emulator.url, CREDENTIALS, requests_per_second=500)
        async with client:
            live = LiveStream(
                engine.config,
                client,
                url=url,
                stream_id="room-lost",
                attached_at=ATTACHED,
                biz_type=None,
                router={},
            )
            async with live:
                while live.task_id is None:  # noqa: ASYNC110 - the stream offers no event
                    await asyncio.sleep(0.05)
                adopted = live.task_id
        tasks = list(stack.emulator.tasks.values())
    assert client.lost == 1
    assert [t.task_id for t in tasks] == [adopted]  # one task: found by its DataId
    assert tasks[0].status == "CANCELLED"  # and cancelled on detach


def test_the_next_poll_is_due_when_the_next_slice_should_be_judged() -> None:
    book = SliceBook("room-due", ATTACHED, ["cmn"], clock=lambda: 1764331300.0)
    task_started = 1764331190.0
    assert book.next_slice_due(0.25, task_started) is None  # no slice length known yet
    first = TaskDetail.model_validate(
        {"TaskId": "t", "Status": "RUNNING", "MediaInfo": {"Duration": 15000}}
    )
    book.polled("t", [], first)
    # the first slice: 15 s of audio and 3.75 s of processing after the task started, +1.5 s
    assert book.next_slice_due(0.25, task_started) == pytest.approx(task_started + 20.25)
    piece = {"OffsetTime": "1764331200", "Result": {"Suggestion": "Pass", "Duration": "15000"}}
    book.polled("t", TaskDetail.model_validate({"AudioSegments": [piece]}).audio_segments)
    assert book.handed_out == 1
    assert book.next_slice_due(0.25, task_started) == pytest.approx(1764331215.0 + 20.25)
    hit = {"OffsetTime": "1764331215", "Result": {"Suggestion": "Block", "HitFlag": 1}}
    called = TaskDetail.model_validate({"TaskId": "t", "AudioSegments": [hit]})
    assert book.called_back("t", called) is False  # followed on: handed out, no poll needed
    assert book.handed_out == 2
    assert not book.every_slice_called_back  # a hit: AMS may call back hits only
    clean = {"OffsetTime": "1764331230", "Result": {"Suggestion": "Pass", "HitFlag": 0}}
    book.called_back("t", TaskDetail.model_validate({"TaskId": "t", "AudioSegments": [clean]}))
    assert book.every_slice_called_back  # a clean slice called back: full callbacks


async def test_streams_starting_together_share_one_listing_of_running_tasks(
    tmp_path: Path,
) -> None:
    # Each stream looks for tasks an earlier run of it left pulling; many streams starting
    # at once read the account's running live tasks once, not once each.
    async with live_setup(tmp_path, Faults(stuck_first=3)) as (stack, engine, url):
        async with (
            engine.live(url, "room-a", ATTACHED) as a,
            engine.live(url, "room-b", ATTACHED) as b,
            engine.live(url, "room-c", ATTACHED) as c,
        ):
            while None in (a.task_id, b.task_id, c.task_id):  # noqa: ASYNC110 - no event
                await asyncio.sleep(0.05)
        listed = stack.emulator.stats.handled["DescribeTasks"]
        statuses = {t.status for t in stack.emulator.tasks.values()}
    assert listed == 1
    assert statuses == {"CANCELLED"}


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("rtmp://live.example.com/app/room", False),
        ("https://live.example.com/room.m3u8", False),
        ("/srv/audio/room.wav", True),
        ("rtsp://camera.example.com/audio", True),
    ],
)
def test_live_mode_refuses_streams_ams_cannot_pull(url: str, refused: bool) -> None:
    config = Config.model_validate(
        {
            "engine": {"type": "ams", "mode": "live"},
            "streams": [{"id": "room-1", "url": url}],
        }
    )
    problems = runtime_problems(config)
    mine = [p for p in problems if p.path == "streams[0].url"]
    assert bool(mine) is refused
    if refused:
        assert "AMS live mode pulls streams over http, https, rtmp, rtmps only" in mine[0].reason
