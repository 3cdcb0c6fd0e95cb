"""``StreamRunner`` and ``Streams`` in this process, on real files decoded by PyAV: the
restart budget, the silent state, and what the registry refuses."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamguard.app.stream_health import StreamHealth
from streamguard.bus.sink import JsonLinesAlerts
from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.backoff import Backoff
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.metrics import Metrics
from streamguard.core.segment import Segment
from streamguard.core.status import StreamState
from streamguard.core.verdict import Verdict
from streamguard.ingest.encoder import encode_pcm
from streamguard.moderation.profiles import Profiles
from streamguard.streams import runner as runner_module
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.refusals import ShuttingDown, StreamConflict, UnknownProfile
from streamguard.streams.registry import Streams
from streamguard.streams.runner import StreamRunner
from streamguard.testing.engines import ToneEngine
from streamguard.testing.media_servers import IcecastServer
from tests.support.media_servers import FixedServer, StatusServer

QUICK = Backoff(initial=0.01, maximum=0.01, jitter=0.0)


class BrokenEngine(ToneEngine):
    """An engine with a bug: every segment raises something that is not ours."""

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        self.judged.append(segment.id)
        raise ZeroDivisionError("engine bug")


class States:
    """Records ``on_state`` and ``on_result`` calls."""

    def __init__(self) -> None:
        self.seen: list[StreamState] = []
        self.results: list[SegmentResult] = []

    async def state(self, stream: StreamConfig, state: StreamState, error: str | None) -> None:
        self.seen.append(state)

    async def result(self, stream: StreamConfig, result: SegmentResult) -> None:
        self.results.append(result)


def wav(path: Path, *parts: tuple[float, int]) -> Path:
    """A WAV of ``(seconds, amplitude)`` parts: 0 is silence, anything else loud noise."""
    rng = np.random.default_rng(1)
    pcm = np.concatenate(
        [
            (rng.standard_normal(int(s * SAMPLE_RATE)) * amp).clip(-32000, 32000).astype(np.int16)
            for s, amp in parts
        ]
    )
    encode_pcm(pcm, path, "wav")
    return path


def runner(
    url: Path, states: States, engine: ToneEngine, ingest: IngestConfig | None = None
) -> StreamRunner:
    return StreamRunner(
        StreamConfig(id="room-1", url=str(url), segment_seconds=15),
        ingest=ingest or IngestConfig(allow_local_files=True),
        engine=engine,
        clip_dir=url.parent / "clips",
        on_result=states.result,
        on_state=states.state,
        metrics=Metrics(),
        biz_type=lambda stream: None,
        restart_backoff=QUICK,
    )


async def test_a_stream_that_keeps_crashing_spends_its_budget_then_fails(tmp_path: Path) -> None:
    media = wav(tmp_path / "loud.wav", (16, 3000))
    states, engine = States(), BrokenEngine()
    stream = runner(media, states, engine)
    async with asyncio.timeout(60):
        await stream.run()
    assert stream.state is StreamState.FAILED
    assert "ZeroDivisionError: engine bug" in (stream.last_error or "")
    # The first life and RESTARTS more, then no more.
    assert states.seen.count(StreamState.CONNECTING) == runner_module.RESTARTS + 1
    assert states.seen.count(StreamState.RESTARTING) == runner_module.RESTARTS
    assert states.seen[-1] is StreamState.FAILED


async def test_a_room_without_speech_turns_silent_then_online_when_speech_returns(
    tmp_path: Path,
) -> None:
    media = wav(tmp_path / "quiet.wav", (45, 0), (15, 3000))
    states = States()
    ingest = IngestConfig(allow_local_files=True, silent_minutes=0.5)
    stream = runner(media, states, ToneEngine(), ingest)
    async with asyncio.timeout(60):
        await stream.run()
    assert [r.verdict.outcome.value for r in states.results] == [
        "no_speech",
        "no_speech",
        "no_speech",
        "moderated",
    ]
    assert states.seen == [
        StreamState.CONNECTING,
        StreamState.ONLINE,
        StreamState.SILENT,  # 30 s without speech (two segments) is silent_minutes = 0.5
        StreamState.ONLINE,
        StreamState.ENDED,
    ]
    report = stream.report()
    assert report.tally.outcomes == {"no_speech": 3, "moderated": 1}
    assert report.to_json()["minutes_skipped_silent"] == 0.75


async def test_the_registry_refuses_what_it_cannot_run_and_detaches_cleanly(
    tmp_path: Path,
) -> None:
    media = wav(tmp_path / "loud.wav", (20, 3000))
    states = States()
    profiles = Profiles({"default": ProfileConfig()})
    attached: list[str] = []

    async def on_attach(stream: StreamConfig) -> None:
        attached.append(stream.id)

    async with Streams(
        ingest=IngestConfig(allow_local_files=True),
        engine=ToneEngine(),
        clip_dir=tmp_path / "clips",
        on_result=states.result,
        on_state=states.state,
        metrics=Metrics(),
        api_allows_files=True,
        profiles=profiles,
        on_attach=on_attach,
    ) as streams:
        stream = StreamConfig(id="room-1", url=str(media), segment_seconds=15)
        await streams.attach(stream)
        with pytest.raises(StreamConflict):
            await streams.attach(stream)
        with pytest.raises(UnknownProfile):
            await streams.attach(stream.model_copy(update={"id": "x", "profile": "gone"}))
        report = streams.report("room-1")
        assert report is not None
        assert report.config == stream
        await streams.wait_stopped()  # the file ends by itself
        assert streams.report("room-1").state is StreamState.ENDED  # type: ignore[union-attr]
        assert await streams.detach("room-1")
        assert streams.report("room-1") is None
        assert not await streams.detach("room-1")
        streams.drain()
        with pytest.raises(ShuttingDown):
            await streams.attach(stream)
    assert attached == ["room-1"]
    assert [r.segment.seq for r in states.results] == [0, 1]  # 15 s and the 5 s tail


class Published:
    """What ``StreamHealth`` published, read back from a JSON-lines sink."""

    def __init__(self) -> None:
        self.log = io.StringIO()
        self.health = StreamHealth(JsonLinesAlerts(io.StringIO(), self.log), silent_minutes=5)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]

    def statuses(self) -> list[dict[str, Any]]:
        return [line["status"] for line in self.lines() if "status" in line]

    def events(self) -> list[dict[str, Any]]:
        return [line["event"] for line in self.lines() if "event" in line]


@contextlib.asynccontextmanager
async def registry(tmp_path: Path, published: Published) -> AsyncIterator[Streams]:
    async def on_attach(stream: StreamConfig) -> None:
        pass

    async with Streams(
        ingest=IngestConfig(
            open_timeout=2, backoff=BackoffConfig(initial=0.1, maximum=0.3), stall_timeout=2
        ),
        engine=ToneEngine(),
        clip_dir=tmp_path / "clips",
        on_result=States().result,
        on_state=published.health.changed,
        metrics=Metrics(),
        api_allows_files=False,
        profiles=Profiles({"default": ProfileConfig()}),
        on_attach=on_attach,
    ) as streams:
        yield streams


async def report_until(streams: Streams, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the stream's report (as the API reads it) until ``ready``."""
    async with asyncio.timeout(30):
        while True:
            report = streams.report("room-1")
            assert report is not None
            if ready(view := report.to_json()):
                return view
            await asyncio.sleep(0.1)


async def test_a_source_that_never_connects_is_failing_down_and_says_why(tmp_path: Path) -> None:
    published = Published()
    async with StatusServer(404) as server, registry(tmp_path, published) as streams:
        await streams.attach(StreamConfig(id="room-1", url=server.url))
        view = await report_until(streams, lambda view: view["failed_attempts"] >= 2)
    assert view["state"] == "failing"
    assert view["last_error"] == f"cannot open {server.url}: the server answered 404 Not Found"
    failing = [s for s in published.statuses() if s["last_error"]]
    assert failing
    assert failing[0]["state"] == "reconnecting"
    assert "404 Not Found" in failing[0]["last_error"]
    downs = [e for e in published.events() if e["kind"] == "down"]
    assert len(downs) == 1
    assert "404 Not Found" in downs[0]["detail"]


async def test_a_stale_error_is_cleared_once_the_stream_is_online(
    tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    media, seconds = room_media
    published = Published()
    server = IcecastServer(media, seconds)  # not started yet: connections are refused
    async with registry(tmp_path, published) as streams:
        await streams.attach(StreamConfig(id="room-1", url=server.url))
        view = await report_until(streams, lambda view: view["state"] == "failing")
        assert "Connection refused" in view["last_error"]
        async with server:
            view = await report_until(streams, lambda view: view["state"] == "online")
            assert (view["last_error"], view["failed_attempts"]) == (None, 0)
    online = [s for s in published.statuses() if s["state"] == "online"]
    assert online[0]["last_error"] is None
    assert [e["kind"] for e in published.events()][:2] == ["down", "restored"]


async def test_a_recording_over_http_is_judged_once_and_ends(tmp_path: Path) -> None:
    media = wav(tmp_path / "loud.wav", (20, 3000))
    states = States()
    server = FixedServer("recording.wav", media.read_bytes(), "audio/wav")
    async with server:
        stream = StreamRunner(
            StreamConfig(id="room-1", url=server.url, segment_seconds=15),
            ingest=IngestConfig(),
            engine=ToneEngine(),
            clip_dir=tmp_path / "clips",
            on_result=states.result,
            on_state=states.state,
            metrics=Metrics(),
            biz_type=lambda stream: None,
            restart_backoff=QUICK,
        )
        async with asyncio.timeout(30):
            await stream.run()
    assert server.requests == 1
    assert stream.state is StreamState.ENDED
    assert [r.segment.seq for r in states.results] == [0, 1]  # 15 s and the 5 s tail
