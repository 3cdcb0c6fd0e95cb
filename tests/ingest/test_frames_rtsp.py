"""Frames from RTSP: the gst-rtsp-server peer of the RTSP source tests carrying H.264 video
(generated with PyAV) beside the Opus audio. Frames are sampled (keyframes only, each
picture once) and the audio is read as before: every step of the tone staircase, in
order, with no gap. Pictures come whole though RTP splits a keyframe into several packets.
Paced in real time: slow, and kept short."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamguard.config.frames import FramesConfig
from streamguard.ingest.source import Source
from streamguard.testing.video import SceneShow, scene_of
from tests.ingest.test_frames_live import SETTINGS, read_live
from tests.ingest.test_source_live import assert_consecutive
from tests.support.media import encode_staircase
from tests.support.media_servers import RtspServer

pytestmark = pytest.mark.slow

SHOW = SceneShow(seeds=(1, 2, 3, 4, 5), scene_seconds=3, audio=False)
CONFIG = FramesConfig(interval=2.0, scene_threshold=0.1)


@pytest.fixture
def rtsp_show(tmp_path: Path) -> Iterator[RtspServer]:
    video = tmp_path / "show.ts"
    video.write_bytes(SHOW.encode())
    server = RtspServer(encode_staircase(tmp_path / "steps.wav", SHOW.seconds), tmp_path, video)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_frames_and_audio_of_an_rtsp_stream_with_h264(rtsp_show: RtspServer) -> None:
    async with Source(rtsp_show.url, SETTINGS, "room-rtsp", frames=CONFIG) as source:
        assert source.target.kind == "rtsp"
        chunks, frames = await read_live(source)
        stats = source.stats
        sampled = source.frame_stats
    # The audio as before: Opus over RTP, every step in order, no gap, no reconnect.
    assert_consecutive(chunks)
    assert stats.gaps == ()
    assert stats.reconnects == 0
    assert stats.audio_track is True
    # Frames: keyframes only, each of the pictures shown taken once.
    assert sampled is not None
    assert sampled.decoded == sampled.keyframes > 0
    assert len(frames) >= 3
    patterns = SHOW.patterns()
    scenes = [scene_of(frame.picture, patterns) for frame in frames]
    for frame, scene in zip(frames, scenes, strict=True):
        # Whole pictures: RTP brings a keyframe as several packets, joined before decoding
        # (decoded apart, each would be a picture of its own, half drawn).
        drift = np.abs(frame.picture.astype(np.int16) - patterns[scene]).mean()
        assert drift < 10, (frame.id, drift)
    assert len(set(scenes)) == len(scenes)
    assert scenes == sorted(scenes)  # in the order they were shown
    offsets = [frame.media_offset for frame in frames]
    assert offsets == sorted(offsets)
    heard = sum(chunk.duration for chunk in chunks)
    assert offsets[-1] <= heard + 1
