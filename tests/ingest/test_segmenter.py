"""The segmenter never loses or duplicates a sample, and full segments are exact."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamguard.core.chunk import SAMPLE_RATE, AudioChunk
from streamguard.core.segment import DATA_ID_PATTERN, Segment, SegmentFlag
from streamguard.ingest.segmenter import Segmenter

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def chunks_of(sizes: list[int]) -> list[AudioChunk]:
    """Chunks whose samples count up 0, 1, 2 ... so order and loss are visible."""
    chunks, start = [], 0
    for size in sizes:
        samples = (np.arange(start, start + size) % 30_000).astype(np.int16)
        wall = T0 + timedelta(seconds=start / SAMPLE_RATE)
        chunks.append(AudioChunk(samples=samples, wall_start=wall))
        start += size
    return chunks


def run(segmenter: Segmenter, chunks: list[AudioChunk]) -> list[Segment]:
    out = [seg for chunk in chunks for seg in segmenter.push(chunk)]
    tail = segmenter.flush()
    return [*out, tail] if tail else out


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40_000), max_size=60),
    seconds=st.sampled_from([15, 30, 60]),
)
def test_no_sample_lost_or_duplicated(sizes: list[int], seconds: int) -> None:
    segmenter = Segmenter("room-1", T0, seconds)
    segments = run(segmenter, chunks_of(sizes))
    total = sum(sizes)
    heard = np.concatenate([s.samples for s in segments]) if segments else np.array([])
    assert len(heard) == total
    assert np.array_equal(heard, (np.arange(total) % 30_000).astype(np.int16))
    length = seconds * SAMPLE_RATE
    for seg in segments[:-1]:
        assert len(seg.samples) == length
        assert SegmentFlag.PARTIAL not in seg.flags
    if segments:
        last = segments[-1]
        assert (len(last.samples) == length) != (SegmentFlag.PARTIAL in last.flags)
    assert [s.seq for s in segments] == list(range(len(segments)))
    for before, after in itertools.pairwise(segments):
        assert after.media_start == pytest.approx(before.media_start + before.duration)
        assert after.started_at == before.ended_at


def test_times_follow_the_chunks() -> None:
    segmenter = Segmenter("room-1", T0, 15)
    (first,) = segmenter.push(chunks_of([16 * SAMPLE_RATE])[0])
    assert first.started_at == T0
    assert first.ended_at == T0 + timedelta(seconds=15)
    assert first.media_start == 0.0
    tail = segmenter.flush()
    assert tail is not None
    assert tail.duration == 1.0
    assert tail.media_start == 15.0
    assert SegmentFlag.PARTIAL in tail.flags


def test_gap_flags_the_next_segment_and_the_one_it_falls_in() -> None:
    segmenter = Segmenter("room-1", T0, 15)
    one_second = np.zeros(SAMPLE_RATE, dtype=np.int16)
    segs = segmenter.push(AudioChunk(np.zeros(15 * SAMPLE_RATE, dtype=np.int16), T0))
    assert segs[0].flags == frozenset()
    later = T0 + timedelta(seconds=20)
    segmenter.push(AudioChunk(one_second, later, gap_before=5.0, discontinuity=True))
    segmenter.push(AudioChunk(one_second, later + timedelta(seconds=3), gap_before=2.0))
    tail = segmenter.flush()
    assert tail is not None
    assert tail.gap_before == 5.0
    assert {SegmentFlag.GAP_BEFORE, SegmentFlag.DISCONTINUITY} <= tail.flags
    assert tail.started_at == later
    assert tail.ended_at == later + timedelta(seconds=4)


def test_a_resumed_stream_flags_its_first_segment_with_the_gap_since_it_was_last_heard() -> None:
    # Fleet mode: another instance recorded the stream up to 8 s before this attach heard it.
    segmenter = Segmenter("room-1", T0, 15, heard_until=T0 - timedelta(seconds=8))
    first, second = segmenter.push(chunks_of([30 * SAMPLE_RATE])[0])
    assert first.gap_before == 8.0
    assert first.flags == {SegmentFlag.GAP_BEFORE}
    assert (second.gap_before, second.flags) == (0.0, frozenset())
    # Heard again before the last recorded end (overlap): no gap to report.
    overlapping = Segmenter("room-1", T0, 15, heard_until=T0 + timedelta(seconds=1))
    (only,) = overlapping.push(chunks_of([15 * SAMPLE_RATE])[0])
    assert (only.gap_before, only.flags) == (0.0, frozenset())


def test_flush_with_nothing_pending_emits_nothing() -> None:
    segmenter = Segmenter("room-1", T0, 15)
    assert segmenter.flush() is None


@given(
    stream_id=st.from_regex(r"\A[A-Za-z0-9_\-@#]{1,40}\Z"),
    seq=st.integers(min_value=0, max_value=10**9),
)
def test_segment_ids_are_valid_ams_data_ids(stream_id: str, seq: int) -> None:
    segmenter = Segmenter(stream_id, T0, 15)
    segmenter._seq = seq
    segmenter.push(chunks_of([10])[0])
    tail = segmenter.flush()
    assert tail is not None
    assert DATA_ID_PATTERN.match(tail.id), tail.id
