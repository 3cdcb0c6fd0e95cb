"""Frames sampled from files with video, read by the real Source: keyframes only, the
interval, scene changes, near-duplicates, and the frames' place on the audio's timeline."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from streamguard.config.frames import FramesConfig
from streamguard.config.ingest import IngestConfig
from streamguard.core.chunk import SAMPLE_RATE, AudioChunk, Pcm
from streamguard.core.frame import Frame, FrameReason
from streamguard.ingest.frames import fingerprint, hamming, picture_fingerprint, scene_distance
from streamguard.ingest.source import Source
from streamguard.testing.video import BASE_HZ, STEP_HZ, SceneShow, pattern, scene_of
from tests.support.media import encode_staircase
from tests.support.reading import GUARD_SECONDS, joined

SETTINGS = IngestConfig(open_timeout=5, read_timeout=5, stall_timeout=2)
ATTACHED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def read_with_frames(source: Source) -> tuple[list[AudioChunk], list[Frame]]:
    """Every chunk and every frame until the source ends, read side by side."""
    frames: list[Frame] = []

    async def take_frames() -> None:
        async for frame in source.frames():
            frames.append(frame)

    async with asyncio.timeout(GUARD_SECONDS), asyncio.TaskGroup() as group:
        group.create_task(take_frames(), name="test.frames")
        chunks = [chunk async for chunk in source]
    return chunks, frames


def step_at(samples: Pcm, offset: float) -> int:
    """Which second of the tone staircase is heard 0.3-0.55 s after ``offset``."""
    start = int((offset + 0.3) * SAMPLE_RATE)
    piece = samples[start : start + SAMPLE_RATE // 4].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece))))
    hz = np.argmax(spectrum) * SAMPLE_RATE / len(piece)
    return round((hz - BASE_HZ) / STEP_HZ)


def write_show(tmp_path: Path, show: SceneShow) -> Path:
    path = tmp_path / f"show.{'ts' if show.container == 'mpegts' else show.container}"
    path.write_bytes(show.encode())
    return path


def test_the_difference_hash_survives_scaling_and_tells_pictures_apart() -> None:
    big, small = pattern(7, 640, 480), pattern(7, 160, 120)
    other = pattern(8, 640, 480)
    assert hamming(picture_fingerprint(big), picture_fingerprint(small)) <= 2
    assert hamming(picture_fingerprint(big), picture_fingerprint(other)) > 12
    flat = np.full((32, 36), 128.0, dtype=np.float32)
    assert fingerprint(flat) == 0  # no block brighter than its neighbour
    assert scene_distance(flat, flat) == 0.0
    assert scene_distance(flat, np.zeros_like(flat)) == pytest.approx(128 / 255)


@pytest.mark.parametrize("container", ["mpegts", "flv"])
async def test_keyframes_only_are_decoded_and_each_scene_is_judged_once(
    tmp_path: Path, container: str
) -> None:
    show = SceneShow(seeds=(1, 2, 1, 3), scene_seconds=3, container=container)
    media = write_show(tmp_path, show)
    frames_config = FramesConfig(interval=2.0)
    async with Source(
        str(media), SETTINGS, "room-1", attached_at=ATTACHED, frames=frames_config
    ) as source:
        chunks, frames = await read_with_frames(source)
    stats = source.frame_stats
    assert stats is not None
    # Only keyframes reached the decoder's output: one a second, not ten.
    assert stats.decoded == stats.keyframes == show.keyframes()
    assert stats.corrupt_packets == 0
    # Scene 2 shows scene 0's picture again: a near-duplicate, not judged twice.
    patterns = show.patterns()
    scenes = [scene_of(frame.picture, patterns) for frame in frames]
    assert scenes == [0, 1, 3]
    assert stats.duplicates > 0
    assert stats.taken == len(frames)
    assert [frame.seq for frame in frames] == [1, 2, 3]
    assert frames[0].reason is FrameReason.FIRST
    for before, after in itertools.pairwise(frames):
        assert after.media_offset - before.media_offset >= frames_config.interval
    # On the audio's timeline: the staircase second heard at a frame's offset belongs to
    # the scene the frame shows, and a file's frame is dated like its audio.
    samples = joined(chunks)
    for frame, scene in zip(frames, scenes, strict=True):
        assert step_at(samples, frame.media_offset) // show.scene_seconds == scene
        dated = ATTACHED + timedelta(seconds=frame.media_offset)
        assert abs((frame.taken_at - dated).total_seconds()) < 1e-3
        assert frame.id == f"room-1-20260102030405-f{frame.seq:05d}"
        assert frame.picture.shape == (show.height, show.width, 3)


async def test_every_frame_is_decoded_when_keyframes_only_is_off(tmp_path: Path) -> None:
    show = SceneShow(seeds=(4, 5), scene_seconds=2)
    media = write_show(tmp_path, show)
    # The two pictures differ by about 0.2; the moving square by far less than 0.1.
    config = FramesConfig(keyframes_only=False, interval=60.0, scene_threshold=0.1)
    async with Source(str(media), SETTINGS, "room-1", frames=config) as source:
        _, frames = await read_with_frames(source)
    stats = source.frame_stats
    assert stats is not None
    assert stats.decoded == show.seconds * show.fps
    assert stats.keyframes == show.keyframes()
    # With a long interval, the second scene is taken for its change of picture.
    assert [frame.reason for frame in frames] == [FrameReason.FIRST, FrameReason.SCENE_CHANGE]
    assert [scene_of(f.picture, show.patterns()) for f in frames] == [0, 1]
    assert stats.scene_changes == 1


async def test_frames_are_scaled_down_to_the_longer_side_asked(tmp_path: Path) -> None:
    show = SceneShow(seeds=(6,), scene_seconds=2, width=640, height=360)
    media = write_show(tmp_path, show)
    async with Source(str(media), SETTINGS, "room-1", frames=FramesConfig(max_side=320)) as source:
        _, frames = await read_with_frames(source)
    assert [frame.picture.shape for frame in frames] == [(180, 320, 3)]
    assert scene_of(frames[0].picture, show.patterns()) == 0


async def test_a_stream_without_video_has_no_frames_and_the_same_audio(tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "steps.mp3", 3)
    async with Source(str(media), SETTINGS, "room-1", frames=FramesConfig()) as source:
        chunks, frames = await read_with_frames(source)
    async with Source(str(media), SETTINGS, "room-1") as plain:
        plain_chunks, _ = await read_with_frames(plain)
    assert frames == []
    stats = source.frame_stats
    assert stats is not None
    assert stats.decoded == 0
    assert np.array_equal(joined(chunks), joined(plain_chunks))


async def test_frames_are_not_sampled_when_switched_off(tmp_path: Path) -> None:
    media = write_show(tmp_path, SceneShow(seeds=(1,), scene_seconds=2))
    async with Source(str(media), SETTINGS, "room-1", frames=FramesConfig(enabled=False)) as source:
        chunks, frames = await read_with_frames(source)
    assert frames == []
    assert source.frame_stats is None
    assert sum(chunk.duration for chunk in chunks) == pytest.approx(2.0, abs=0.1)
