"""Frames sampled from live streams with video, paced in real time on loopback: MPEG-TS and
FLV over HTTP, a live HLS playlist, RTMP through a real nginx-rtmp: keyframes only, near-duplicates
dropped, each frame dated by the same clock as the audio around it."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from streamguard.config.frames import FramesConfig
from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.frame import Frame
from streamguard.ingest.source import Source
from streamguard.testing.flv import FlvLiveServer
from streamguard.testing.media_servers import IcecastServer
from streamguard.testing.video import SceneShow, scene_of
from tests.ingest.test_frames import step_at
from tests.support.media_servers import HlsSegment, HlsServer, NginxRtmp
from tests.support.reading import GUARD_SECONDS, joined

pytestmark = pytest.mark.slow

SETTINGS = IngestConfig(
    open_timeout=5,
    read_timeout=5,
    stall_timeout=3,
    backoff=BackoffConfig(initial=0.05, maximum=0.3),
)
READ_SECONDS = 11.0
CONFIG = FramesConfig(interval=2.0, scene_threshold=0.1)
ALTERNATING = SceneShow(seeds=(1, 2) * 6, scene_seconds=3)
"""Two pictures taking turns every 3 s: whatever 11 s a late listener hears holds a repeat."""


@pytest.fixture
async def broadcast() -> AsyncIterator[tuple[IcecastServer, SceneShow]]:
    # MPEG-TS, which a listener can join at any byte (HTTP-FLV has its own server below).
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


def check_frames(
    source: Source, chunks: list[AudioChunk], frames: list[Frame], show: SceneShow
) -> None:
    """Keyframes only, each picture judged once, every frame on the audio's clock."""
    stats = source.frame_stats
    assert stats is not None
    heard = sum(chunk.duration for chunk in chunks)
    # Keyframes only (one a second), never the nine frames between them.
    assert stats.decoded == stats.keyframes
    assert 0 < stats.decoded <= heard + 4  # a live start may bring a few seconds at once
    assert stats.taken == len(frames) >= 2
    # A picture shown twice in what was read is judged once.
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


async def test_frames_of_a_live_http_stream_are_keyframes_deduplicated_and_on_the_audio_clock(
    broadcast: tuple[IcecastServer, SceneShow],
) -> None:
    server, show = broadcast
    async with Source(server.url, SETTINGS, "room-1", frames=CONFIG) as source:
        chunks, frames = await read_live(source)
        assert source.live is True
    check_frames(source, chunks, frames, show)


def hls_of(media: Path, workdir: Path) -> list[HlsSegment]:
    """The show cut into 3-second MPEG-TS segments as they are (``-c copy``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    playlist = workdir / "all.m3u8"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(media), "-c", "copy",
         "-f", "hls", "-hls_time", "3", "-hls_list_size", "0",
         "-hls_segment_filename", str(workdir / "seg%04d.ts"), str(playlist)],
        check=True,
    )  # fmt: skip
    found = re.findall(r"#EXTINF:([0-9.]+),\s*\n(\S+)", playlist.read_text(encoding="utf-8"))
    return [HlsSegment(name, float(sec), (workdir / name).read_bytes()) for sec, name in found]


async def test_frames_of_a_live_hls_stream(tmp_path: Path) -> None:
    media = tmp_path / "show.ts"
    media.write_bytes(ALTERNATING.encode())
    server = HlsServer(hls_of(media, tmp_path / "hls"), window=3)
    async with server, Source(server.url, SETTINGS, "room-hls", frames=CONFIG) as source:
        assert source.target.kind == "hls"
        chunks, frames = await read_live(source)
    check_frames(source, chunks, frames, ALTERNATING)


@pytest.fixture
def nginx_rtmp(tmp_path: Path) -> Iterator[NginxRtmp]:
    server = NginxRtmp(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rtmp_show(nginx_rtmp: NginxRtmp, tmp_path: Path) -> Iterator[str]:
    """The alternating show published (H.264 and AAC copied into FLV) at real-time pace."""
    media = tmp_path / "show.ts"
    media.write_bytes(ALTERNATING.encode())
    publisher = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(media), "-c", "copy",
         "-f", "flv", nginx_rtmp.url("room-v")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield nginx_rtmp.url("room-v")
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)


async def test_frames_of_a_live_rtmp_stream(rtmp_show: str) -> None:
    # The reader may connect before the publisher: it retries with backoff until it plays.
    async with Source(rtmp_show, SETTINGS, "room-v", frames=CONFIG) as source:
        assert source.target.kind == "rtmp"
        chunks, frames = await read_live(source)
    check_frames(source, chunks, frames, ALTERNATING)


async def test_frames_of_a_live_http_flv_stream() -> None:
    show = replace(ALTERNATING, container="flv")
    async with FlvLiveServer(show.encode()) as server:
        await asyncio.sleep(1.5)  # join the broadcast late, at a keyframe, as a viewer does
        async with Source(server.url, SETTINGS, "room-flv", frames=CONFIG) as source:
            chunks, frames = await read_live(source)
            assert source.live is True
    check_frames(source, chunks, frames, show)
