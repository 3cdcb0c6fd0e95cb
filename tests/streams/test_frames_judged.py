"""Frames of a stream judged beside its audio, through the one moderation path: the image
rules decide, a frame hit opens (or joins) the room's incident, and its alert carries the
frame's JPEG as evidence. Real video decoded by PyAV; the marker image fake judges here, so
each case picks its hits; test_frames_real_engine.py runs the real model on a drawn picture
it flags."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from streamguard.config.frames import FramesConfig
from streamguard.config.ingest import IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.frame import Frame, FrameReason, Picture
from streamguard.core.metrics import Metrics
from streamguard.core.segment import SegmentFlag
from streamguard.core.status import StreamState
from streamguard.core.verdict import Suggestion, Verdict
from streamguard.ingest.source import FRAME_QUEUE
from streamguard.moderation.alert import alert_schema
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.profiles import Profiles
from streamguard.state.db import Database
from streamguard.state.results import ResultQuery, Results
from streamguard.streams.frames import FrameResult
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.runner import StreamRunner
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from streamguard.testing.engines import ToneEngine
from streamguard.testing.images import MARKER, MarkerImageEngine, marked
from streamguard.testing.video import SceneShow, scene_of

PROFILES = {"default": ProfileConfig(cooldown_seconds=0)}


@pytest.fixture
async def outcomes(tmp_path: Path) -> AsyncIterator[tuple[Outcomes, RecordingSink]]:
    sink = RecordingSink()
    store = EvidenceStore(tmp_path / "evidence", keep_seconds=3600, max_bytes=10**8)
    async with Alerting(Profiles(PROFILES), sink, instance_id="i1", evidence=store) as alerting:
        yield Outcomes(Profiles(PROFILES), alerting), sink


async def test_a_frame_hit_of_a_stream_alerts_with_its_jpeg_as_evidence(
    tmp_path: Path, outcomes: tuple[Outcomes, RecordingSink]
) -> None:
    moderation, sink = outcomes
    show = SceneShow(seeds=(1, 2, 3), scene_seconds=3, marked=(1,))
    media = tmp_path / "show.ts"
    media.write_bytes(show.encode())
    config = StreamConfig(id="room-1", url=str(media), segment_seconds=15, room="lobby")
    frames: list[FrameResult] = []
    segments: list[SegmentResult] = []

    async def on_frame(stream: StreamConfig, result: FrameResult) -> None:
        frames.append(result)
        await moderation.handle_frame(stream, result.frame.info(), result.verdict, result.jpeg)

    async def on_result(stream: StreamConfig, result: SegmentResult) -> None:
        segments.append(result)
        await moderation.handle(stream, result.segment, result.verdict, None)

    async def on_state(stream: StreamConfig, state: StreamState, error: str | None) -> None:
        pass

    image_engine = MarkerImageEngine()
    metrics = Metrics()
    runner = StreamRunner(
        config,
        ingest=IngestConfig(frames=FramesConfig(interval=60.0, scene_threshold=0.1)),
        engine=ToneEngine(),
        clip_dir=tmp_path / "clips",
        on_result=on_result,
        on_state=on_state,
        metrics=metrics,
        biz_type=lambda stream: None,
        image_engine=image_engine,
        on_frame=on_frame,
        image_biz_type=lambda stream: f"{stream.room_id}_frames",
    )
    await runner.run()
    assert runner.state is StreamState.ENDED
    assert segments  # the audio was judged as before
    # One frame per scene: the first, then two scene changes; the middle one is the hit.
    assert [r.frame.reason for r in frames] == [
        FrameReason.FIRST,
        FrameReason.SCENE_CHANGE,
        FrameReason.SCENE_CHANGE,
    ]
    assert [scene_of(r.frame.picture, show.patterns()) for r in frames] == [0, 1, 2]
    assert [r.verdict.suggestion for r in frames] == [
        Suggestion.PASS,
        Suggestion.BLOCK,
        Suggestion.PASS,
    ]
    assert [r.jpeg is not None for r in frames] == [False, True, False]
    assert image_engine.judged == [r.frame.id for r in frames]
    assert image_engine.biz_types == ["lobby_frames"] * 3  # the stream's profile's, per frame
    judged = metrics.registry.get_sample_value("streamguard_frames_total", {"outcome": "moderated"})
    assert judged == 3

    [alert] = sink.alerts
    payload = alert.payload
    jsonschema.validate(payload, alert_schema())
    hit = frames[1].frame
    assert payload["frame"]["id"] == payload["segment"]["id"] == hit.id
    assert payload["frame"]["taken_at"] == hit.taken_at.isoformat()
    assert payload["segment"]["duration"] == 0
    assert (payload["risk"]["label"], payload["risk"]["level"]) == ("Porn", "high")
    assert payload["stream"]["room_id"] == "lobby"
    evidence = Path(payload["evidence"]["clip_path"])
    assert evidence.suffix == ".jpg"
    jpeg = await asyncio.to_thread(evidence.read_bytes)
    assert hashlib.sha256(jpeg).hexdigest() == payload["evidence"]["sha256"]
    picture = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    assert np.abs(picture.astype(int) - MARKER).mean() < 20  # the frame itself, as JPEG
    assert not (tmp_path / "clips" / f"{hit.id}.jpg").exists()  # moved into the evidence


async def test_audio_and_frame_hits_of_one_room_and_label_are_one_incident(
    outcomes: tuple[Outcomes, RecordingSink],
) -> None:
    moderation, sink = outcomes
    room = stream(room="lobby")
    heard = segment(seq=0)
    await moderation.handle(room, heard, risky(heard, label="Porn", score=95), None)
    frame = Frame(
        stream_id=room.id,
        seq=1,
        attached_at=heard.attached_at,
        taken_at=heard.started_at + timedelta(seconds=20),
        media_offset=20.0,
        picture=marked(),
        fingerprint=0,
        reason=FrameReason.INTERVAL,
        keyframe=True,
    )
    [verdict] = await MarkerImageEngine().judge([(frame.id, frame.picture)])
    await moderation.handle_frame(room, frame.info(), verdict, None)
    first, second = sink.alerts
    assert first.payload["incident"]["id"] == second.payload["incident"]["id"]
    assert [a.payload["incident"]["event"] for a in sink.alerts] == ["new", "update"]
    assert second.payload["incident"]["segments"] == 2
    assert "frame" not in first.payload
    assert second.payload["frame"]["id"] == frame.id
    for alert in sink.alerts:
        jsonschema.validate(alert.payload, alert_schema())


class HeldEngine(MarkerImageEngine):
    """Judges nothing until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def judge(
        self, pictures: Sequence[tuple[str, Picture]], *, biz_type: str | None = None
    ) -> list[Verdict]:
        await self.release.wait()
        return await super().judge(pictures, biz_type=biz_type)


async def test_frames_the_judge_cannot_take_are_dropped_and_counted_never_the_audio(
    tmp_path: Path,
) -> None:
    show = SceneShow(seeds=tuple(range(1, 21)), scene_seconds=1)
    media = tmp_path / "show.ts"
    media.write_bytes(show.encode())
    engine, metrics = HeldEngine(), Metrics()
    segments: list[SegmentResult] = []
    judged: list[FrameResult] = []

    async def on_result(stream: StreamConfig, result: SegmentResult) -> None:
        segments.append(result)
        if SegmentFlag.PARTIAL in result.segment.flags:  # the tail: the file was all read
            engine.release.set()

    async def on_frame(stream: StreamConfig, result: FrameResult) -> None:
        judged.append(result)

    async def on_state(stream: StreamConfig, state: StreamState, error: str | None) -> None:
        pass

    runner = StreamRunner(
        StreamConfig(id="room-1", url=str(media), segment_seconds=15),
        ingest=IngestConfig(frames=FramesConfig(interval=1.0, scene_threshold=0)),
        engine=ToneEngine(),
        clip_dir=tmp_path / "clips",
        on_result=on_result,
        on_state=on_state,
        metrics=metrics,
        biz_type=lambda stream: None,
        image_engine=engine,
        on_frame=on_frame,
    )
    await runner.run()
    # The audio, all of it: 15 s and the 5 s tail.
    assert [round(r.segment.duration) for r in segments] == [15, 5]
    sample = metrics.registry.get_sample_value
    dropped = sample("streamguard_frames_total", {"outcome": "dropped"})
    assert dropped is not None
    assert dropped > 0
    assert len(judged) <= FRAME_QUEUE + 1  # the one being judged and the queue
    assert sample("streamguard_frames_total", {"outcome": "moderated"}) == len(judged)
    assert [r.frame.seq for r in judged] == sorted(r.frame.seq for r in judged)


async def test_frames_are_recorded_as_results_and_counted_in_usage(tmp_path: Path) -> None:
    sink = RecordingSink()
    async with (
        Database(tmp_path / "state.db") as db,
        Alerting(Profiles(PROFILES), sink, instance_id="i1") as alerting,
    ):
        results = Results(db)
        moderation = Outcomes(Profiles(PROFILES), alerting, results)
        room = stream(room="lobby")
        heard = segment(seq=0)
        await moderation.handle(room, heard, risky(heard, label="Porn", score=95), None)
        frame = Frame(
            stream_id=room.id,
            seq=1,
            attached_at=heard.attached_at,
            taken_at=heard.started_at + timedelta(seconds=5),
            media_offset=5.0,
            picture=marked(),
            fingerprint=0xABC,
            reason=FrameReason.FIRST,
            keyframe=True,
        )
        [verdict] = await MarkerImageEngine().judge([(frame.id, frame.picture)])
        await moderation.handle_frame(room, frame.info(), verdict, None)
        rows = await results.query(ResultQuery(room_id="lobby"))
        usage = await results.usage()
    recorded = {row["segment"]["segment_id"]: row for row in rows}
    assert recorded[frame.id]["segment"]["frame"]["fingerprint"] == "0000000000000abc"
    assert recorded[frame.id]["risk"] == "high"
    [porn] = [day for day in usage if day["label"] == "Porn"]
    assert (porn["frames"], porn["frames_judged"], porn["segments"]) == (1, 1, 1)
    assert porn["minutes_ingested"] == round(heard.duration / 60, 3)  # the frame adds none
