"""A stream with video and no audio: read for its frames alone (no audio chunks, so no
segments; ``audio_track`` false), live over HTTP on loopback and as a recording; refused,
as before, when frames are not sampled. The video is generated with PyAV."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamguard.config.frames import FramesConfig
from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import SourceError
from streamguard.core.frame import Frame, FrameReason
from streamguard.core.metrics import Metrics
from streamguard.core.status import StreamState
from streamguard.core.verdict import Suggestion
from streamguard.ingest.source import Source
from streamguard.streams.frames import FrameResult
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.runner import StreamRunner
from streamguard.testing.engines import ToneEngine
from streamguard.testing.images import MarkerImageEngine
from streamguard.testing.media_servers import IcecastServer
from streamguard.testing.video import SceneShow, scene_of
from tests.support.reading import GUARD_SECONDS

SETTINGS = IngestConfig(
    open_timeout=5,
    read_timeout=5,
    stall_timeout=3,
    backoff=BackoffConfig(initial=0.05, maximum=0.3),
)
CONFIG = FramesConfig(interval=2.0, scene_threshold=0.1)
SHOW = SceneShow(seeds=(1, 2, 3, 4), scene_seconds=2, audio=False)


async def read_frames(
    source: Source, wanted: int | None = None
) -> tuple[list[AudioChunk], list[Frame]]:
    """Every chunk (there should be none) and the frames, detaching after ``wanted``."""
    frames: list[Frame] = []

    async def take_frames() -> None:
        async for frame in source.frames():
            frames.append(frame)
            if wanted is not None and len(frames) >= wanted:
                source.detach()

    chunks: list[AudioChunk] = []
    async with asyncio.timeout(GUARD_SECONDS), asyncio.TaskGroup() as group:
        group.create_task(take_frames(), name="test.frames")
        async for chunk in source:
            chunks.append(chunk)
    return chunks, frames


@pytest.mark.slow
async def test_a_live_stream_without_audio_is_read_for_its_frames() -> None:
    media = SHOW.encode()
    server = IcecastServer(media, SHOW.seconds, burst=0.0, content_type="video/mp2t")
    async with server, Source(server.url, SETTINGS, "room-v", frames=CONFIG) as source:
        chunks, frames = await read_frames(source, wanted=3)
        stats = source.stats
    assert chunks == []  # no audio: nothing for the segmenter
    assert stats.audio_track is False
    assert stats.state in (StreamState.ONLINE, StreamState.ENDED)
    assert stats.connects >= 1
    assert stats.heard_seconds == 0
    assert len(frames) >= 3
    offsets = [f.media_offset for f in frames]
    assert offsets == sorted(offsets)
    # On the video's own clock: keyframes come every second, so frames are whole seconds
    # apart (at least one: scene changes are taken at most once a second).
    for before, after in itertools.pairwise(offsets):
        assert after - before >= 0.99
        assert after - before == pytest.approx(round(after - before), abs=0.05)
    now = datetime.now(UTC)
    for frame in frames:  # live: dated by the wall clock as decoded
        assert now - timedelta(seconds=GUARD_SECONDS) < frame.taken_at <= now
    scenes = [scene_of(f.picture, SHOW.patterns()) for f in frames]
    assert len(set(scenes)) == len(scenes)  # a new picture each time, never a repeat


async def test_a_recording_without_audio_gives_frames_on_its_own_clock(tmp_path: Path) -> None:
    path = tmp_path / "video-only.ts"
    path.write_bytes(SHOW.encode())
    attached = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    async with Source(path, SETTINGS, "file-v", frames=CONFIG, attached_at=attached) as source:
        chunks, frames = await read_frames(source)
        stats = source.stats
    assert chunks == []
    assert stats.audio_track is False
    assert frames[0].reason is FrameReason.FIRST
    patterns = SHOW.patterns()
    for frame in frames:
        # The picture shown at the frame's offset is the scene of that second of the video.
        assert scene_of(frame.picture, patterns) == int(frame.media_offset // SHOW.scene_seconds)
        assert frame.taken_at == attached + timedelta(seconds=frame.media_offset)
    assert {scene_of(f.picture, patterns) for f in frames} == {0, 1, 2, 3}


async def test_without_frames_a_stream_without_audio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "video-only.ts"
    path.write_bytes(SceneShow(seeds=(1,), scene_seconds=1, audio=False).encode())

    async def read_all() -> None:
        async with Source(path, SETTINGS, "file-v") as source:
            async for _ in source:
                pass

    with pytest.raises(SourceError, match="has no audio stream"):
        await read_all()


async def test_a_stream_runner_judges_the_frames_of_a_stream_without_audio(tmp_path: Path) -> None:
    show = SceneShow(seeds=(1, 2, 3), scene_seconds=2, marked=(1,), audio=False)
    media = tmp_path / "show.ts"
    media.write_bytes(show.encode())
    states: list[StreamState] = []
    segments: list[SegmentResult] = []
    frames: list[FrameResult] = []

    async def on_result(stream: StreamConfig, result: SegmentResult) -> None:
        segments.append(result)

    async def on_frame(stream: StreamConfig, result: FrameResult) -> None:
        frames.append(result)

    async def on_state(stream: StreamConfig, state: StreamState, error: str | None) -> None:
        states.append(state)

    runner = StreamRunner(
        StreamConfig(id="room-v", url=str(media), segment_seconds=15),
        ingest=IngestConfig(frames=FramesConfig(interval=60.0, scene_threshold=0.1)),
        engine=ToneEngine(),
        clip_dir=tmp_path / "clips",
        on_result=on_result,
        on_state=on_state,
        metrics=Metrics(),
        biz_type=lambda stream: None,
        image_engine=MarkerImageEngine(),
        on_frame=on_frame,
    )
    async with asyncio.timeout(GUARD_SECONDS):
        await runner.run()
    assert segments == []  # no audio track: no segments
    assert StreamState.ONLINE in states  # online by its frames
    assert runner.state is StreamState.ENDED
    assert [r.verdict.suggestion for r in frames] == [
        Suggestion.PASS,
        Suggestion.BLOCK,
        Suggestion.PASS,
    ]
    report = runner.report().to_json()
    assert (report["audio_track"], report["segments"]) == (False, 0)
