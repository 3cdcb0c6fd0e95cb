"""Decoded audio resampled in batches: the same samples as frame by frame, and each batch
standing exactly for the frames it holds on the stream's clock."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from streamguard.core.chunk import SAMPLE_RATE
from streamguard.ingest.resampling import BATCH_SECONDS, Heard, HeardBatches, MonoResampler

FRAME = 1024  # an AAC frame


def _frames(
    rate: int, layout: str, count: int, *, first_pts: int | None = 0
) -> list[av.AudioFrame]:
    """``count`` consecutive frames of a 440 Hz tone, timed by their sample count."""
    channels = 2 if layout == "stereo" else 1
    frames = []
    for n in range(count):
        t = np.arange(n * FRAME, (n + 1) * FRAME) / rate
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(tone, channels).reshape(1, -1), format="s16", layout=layout
        )
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = None if first_pts is None else first_pts + n * FRAME
        frames.append(frame)
    return frames


def _batched(frames: list[av.AudioFrame]) -> tuple[list[Heard], int]:
    changes = 0

    def changed() -> None:
        nonlocal changes
        changes += 1

    batches = HeardBatches(changed)
    heard = [h for frame in frames for h in batches.add(frame)]
    return [*heard, *batches.cut(), batches.tail()], changes


def _one_by_one(frames: list[av.AudioFrame]) -> np.ndarray:
    resampler = MonoResampler()
    pcm = [p for frame in frames for p in resampler.feed(frame)] + resampler.flush()
    return np.concatenate(pcm)


def _samples(heard: list[Heard]) -> np.ndarray:
    return np.concatenate([p for h in heard for p in h.pcm])


def test_batches_give_the_same_samples_as_frame_by_frame_and_span_their_frames() -> None:
    frames = _frames(44_100, "stereo", 100)
    expected = _one_by_one(_frames(44_100, "stereo", 100))
    heard, changes = _batched(frames)
    assert np.array_equal(_samples(heard), expected)
    assert changes == 0
    timed = heard[:-1]
    # About half a second each; together they cover the frames end to end on the media clock.
    assert len(timed) == -(-100 * FRAME // round(44_100 * BATCH_SECONDS))
    position = 0.0
    for h in timed:
        assert h.media_start is not None
        assert h.media_start == position
        position = h.media_start + h.media_seconds
    assert position == 100 * FRAME / 44_100
    assert heard[-1].media_start is None  # the resampler's tail


def test_a_batch_ends_at_a_jump_in_the_timestamps() -> None:
    before = _frames(44_100, "mono", 5)
    after = _frames(44_100, "mono", 5, first_pts=44_100 * 10)  # ten seconds on
    heard, _ = _batched(before + after)
    starts = [h.media_start for h in heard]
    assert starts == [0.0, 10.0, None]
    assert heard[0].media_seconds == 5 * FRAME / 44_100


def test_untimed_frames_are_batched_apart_from_timed_ones() -> None:
    frames = _frames(44_100, "mono", 3) + _frames(44_100, "mono", 3, first_pts=None)
    heard, _ = _batched(frames)
    assert [h.media_start for h in heard] == [0.0, None, None]
    assert heard[1].media_seconds == 3 * FRAME / 44_100


def test_a_format_change_closes_the_batch_and_loses_no_sample() -> None:
    frames = (
        _frames(44_100, "mono", 10)
        + _frames(22_050, "mono", 10)
        + _frames(22_050, "stereo", 10)
        + _frames(48_000, "mono", 10)
    )
    heard, changes = _batched(frames)
    assert changes == 3
    assert [h.format_changed for h in heard] == [False, True, True, True, False]
    expected = sum(
        round(10 * FRAME * SAMPLE_RATE / rate) for rate in (44_100, 22_050, 22_050, 48_000)
    )
    assert abs(len(_samples(heard)) - expected) <= 4  # each rate rounds its own last sample
