"""Frames sampled from a live HTTP stream with video (MPEG-TS over loopback, paced in real
time like a broadcast): keyframes only, near-duplicates dropped, each frame dated by
the same clock as the audio around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streamguard.config.frames import FramesConfig
from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.frame import Frame
from streamguard.ingest.source import Source
from streamguard.testing.media_servers import IcecastServer
from streamguard.testing.video import SceneShow, scene_of
from tests.ingest.test_frames import step_at
from tests.support.reading import GUARD_SECONDS, joined

pytestmark = pytest.mark.slow

SETTINGS = IngestConfig(
    open_timeout=5,
    read_timeout=5,
    stall_timeout=3,
    backoff=BackoffConfig(initial=0.05, maximum=0.3),
)
READ_SECONDS = 11.0


@pytest.fixture
async def broadcast() -> AsyncIterator[tuple[IcecastServer, SceneShow]]:
    # MPEG-TS, which a listener can join at any byte. (HTTP-FLV needs a server that sends
    # the FLV header and codec headers to each new listener; FLV is read from files.)
    show = SceneShow(seeds=(1, 2, 1, 3), scene_seconds=3)
    media = show.encode()
    async with IcecastServer(media, show.seconds, burst=0.0, content_type="video/mp2t") as server:
        yield server, show


async def read_live(source: Source) -> tuple[list[AudioChunk], list[Frame]]:
    """Audio and frames side by side, until ``READ_SECONDS`` of audio were heard."""
    frames: list[Frame] = []

    async def take_frames() -> None:
        async for frame in source.frames():
            frames.append(frame)

    chunks: list[AudioChunk] = []
    async with asyncio.timeout(GUARD_SECONDS), asyncio.TaskGroup() as group:
        group.create_task(take_frames(), name="test.frames")
        async for chunk in source:
            chunks.append(chunk)
            if sum(c.duration for c in chunks) >= READ_SECONDS:
                source.detach()
    return chunks, frames


async def test_frames_of_a_live_http_stream_are_keyframes_deduplicated_and_on_the_audio_clock(
    broadcast: tuple[IcecastServer, SceneShow],
) -> None:
    server, show = broadcast
    config = FramesConfig(interval=2.0, scene_threshold=0.1)
    async with Source(server.url, SETTINGS, "room-1", frames=config) as source:
        chunks, frames = await read_live(source)
        assert source.live is True
    stats = source.frame_stats
    assert stats is not None
    heard = sum(chunk.duration for chunk in chunks)
    # Keyframes only (one a second), never the nine frames between them.
    assert stats.decoded == stats.keyframes
    assert 0 < stats.decoded <= heard + 2
    assert stats.taken == len(frames) >= 2
    # One picture is shown twice in the broadcast: judged once.
    patterns = show.patterns()
    scenes = [scene_of(frame.picture, patterns) for frame in frames]
    seeds = [show.seeds[scene] for scene in scenes]
    assert len(seeds) == len(set(seeds))
    assert stats.duplicates >= 1
    assert source.frames_dropped == 0
    samples = joined(chunks)
    for frame, scene in zip(frames, scenes, strict=True):
        # The audio heard at the frame's offset is from the second of the scene it shows.
        assert step_at(samples, frame.media_offset) // show.scene_seconds == scene
        # Dated by the chunk it falls in: that chunk's stamp plus the distance into it.
        start = 0.0
        for chunk in chunks:
            if start <= frame.media_offset < start + chunk.duration:
                expected = chunk.wall_start.timestamp() + frame.media_offset - start
                assert frame.taken_at.timestamp() == pytest.approx(expected, abs=1e-3)
                break
            start += chunk.duration
