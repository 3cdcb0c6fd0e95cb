"""What AMS hears of a segment: speech pieces joined, pauses shortened, times mapped back.

Unit and property tests of ``Excerpt``, then the real speech gate in front of ``AmsEngine``
and the emulator over HTTP: two utterances far apart are one task whose clip holds only
them, and the verdict's times are the segment's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.excerpt import Excerpt
from streamguard.core.verdict import Outcome
from streamguard.engines.gated import GatedEngine
from streamguard.engines.local import SpeechGate
from streamguard.state.db import Database
from tests.support.ams import ams_stack, engine_for
from tests.support.audio import make_segment, silence
from tests.support.speech import SpeechCache


def test_runs_are_padded_and_long_pauses_shortened() -> None:
    runs = [(1.0, 2.0), (2.15, 3.0), (6.0, 7.0), (14.95, 15.0)]
    excerpt = Excerpt.around(runs, 15.0, pad=0.1)
    assert excerpt is not None
    # 0.15 s pause: kept whole (joined); 3 s pause: 0.2 s of it kept; padding stops at 15 s.
    assert excerpt.pieces == ((0.9, 3.1), (5.9, 7.1), (14.85, 15.0))
    assert excerpt.duration == pytest.approx(2.2 + 1.2 + 0.15)


def test_clip_times_map_back_onto_the_segment() -> None:
    excerpt = Excerpt(((2.0, 5.0), (11.0, 13.0)))
    assert excerpt.segment_time(0.0) == 2.0
    assert excerpt.segment_time(1.5) == 3.5
    # At the join a start belongs to the next piece, an end to the previous one.
    assert excerpt.segment_time(3.0) == 11.0
    assert excerpt.segment_time(3.0, end=True) == 5.0
    assert excerpt.segment_time(5.0, end=True) == 13.0


def test_the_clip_is_the_pieces_joined() -> None:
    samples = np.arange(10 * SAMPLE_RATE, dtype=np.int64).astype(np.int16)
    excerpt = Excerpt(((1.0, 2.0), (5.0, 5.5)))
    clip = excerpt.samples(samples)
    expected = np.concatenate([samples[SAMPLE_RATE : 2 * SAMPLE_RATE], samples[80000:88000]])
    assert np.array_equal(clip, expected)


@pytest.mark.parametrize(
    "pieces", [(), ((2.0, 1.0),), ((1.0, 1.0),), ((0.0, 2.0), (1.0, 3.0)), ((-1.0, 1.0),)]
)
def test_pieces_must_be_ordered_and_hold_audio(pieces: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError, match="piece"):
        Excerpt(pieces)


def test_json_round_trip() -> None:
    excerpt = Excerpt(((0.25, 3.5), (7.0, 9.125)))
    assert Excerpt.from_json(excerpt.to_json()) == excerpt


runs_strategy = st.lists(
    st.tuples(st.floats(0, 14.9), st.floats(0.01, 3.0)).map(lambda r: (r[0], r[0] + r[1])),
    min_size=1,
    max_size=12,
)


@given(runs=runs_strategy, pad=st.floats(0, 0.5))
def test_every_run_is_heard_and_no_pause_longer_than_twice_the_pad(
    runs: list[tuple[float, float]], pad: float
) -> None:
    duration = 15.0
    excerpt = Excerpt.around(runs, duration, pad=pad)
    assert excerpt is not None
    for start, end in runs:  # every speech run lies inside one piece
        start, end = min(start, duration), min(end, duration)
        if end > start:
            assert any(a <= start and end <= b for a, b in excerpt.pieces)
    for (_, end), (start, _) in zip(excerpt.pieces, excerpt.pieces[1:], strict=False):
        assert start - end > 0  # pieces that touch are joined
    speech = np.zeros(int(duration * 1000), dtype=bool)  # milliseconds
    for start, end in runs:
        speech[round(start * 1000) : round(min(end, duration) * 1000)] = True
    # No pause inside the clip is longer than 2 * pad, nor any edge longer than pad.
    for start, end in excerpt.pieces:
        heard = speech[round(start * 1000) : round(end * 1000)]
        loud = np.flatnonzero(heard)
        assert loud[0] <= pad * 1000 + 1
        assert len(heard) - 1 - loud[-1] <= pad * 1000 + 1
        assert np.diff(loud).max(initial=1) - 1 <= 2 * pad * 1000 + 2
    # Clip times map monotonically into the pieces.
    times = np.linspace(0, excerpt.duration, 50, endpoint=False)
    mapped = [excerpt.segment_time(float(t)) for t in times]
    assert mapped == sorted(mapped)
    assert all(any(a <= m <= b for a, b in excerpt.pieces) for m in mapped)


def _trimmed(pcm: Pcm) -> Pcm:
    """The utterance without the synthesiser's silent edges (below -45 dBFS)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 32767 * 10 ** (-45 / 20))
    return pcm[loud[0] : loud[-1] + 1]


async def test_the_gated_ams_path_bills_the_speech_not_the_pause(tmp_path: Path) -> None:
    speech = SpeechCache(tmp_path)
    first = _trimmed(speech("Hi everyone, welcome back to the room.", "hibari"))
    second = _trimmed(speech("Let me share my screen so you can see the schedule.", "hibari"))
    pause = 4.0
    samples = np.concatenate([silence(1.0), first, silence(pause), second, silence(1.0)])
    segment = make_segment("room-gated", 0, samples)
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, callbacks=False) as ams,
    ):
        gated = GatedEngine(ams, SpeechGate(), pad=0.1)
        verdict = await gated.moderate(segment)
    assert verdict.outcome is Outcome.MODERATED
    # Every utterance is inside a piece sent (give or take a frame of the gate's).
    first_at = (1.0, 1.0 + len(first) / SAMPLE_RATE)
    second_at = (first_at[1] + pause, first_at[1] + pause + len(second) / SAMPLE_RATE)
    pieces = verdict.details["excerpt"]
    for start, end in (first_at, second_at):
        assert any(a <= start + 0.1 and end - 0.1 <= b for a, b in pieces), pieces
    # The 4 s pause and the silent edges were not sent: less than the first-to-last span.
    billed = stack.emulator.stats.billed_seconds
    spoken = (len(first) + len(second)) / SAMPLE_RATE
    assert billed == pytest.approx(sum(b - a for a, b in pieces), abs=0.01)
    assert billed < spoken + 1.0
    assert gated.seconds_saved == pytest.approx(segment.duration - billed, abs=0.01)
