"""Local files through a real Source: PyAV decoding, resampling, corrupt data, format changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest

from streamguard.config.ingest import IngestConfig
from streamguard.core.chunk import SAMPLE_RATE, AudioChunk
from streamguard.core.errors import ProtocolNotAllowed, SourceError
from streamguard.core.status import StreamState
from streamguard.ingest.resampling import MonoResampler
from streamguard.ingest.source import Source
from streamguard.testing.media_servers import garbage
from tests.support.media import encode_staircase, encode_tone, staircase_steps, tone_runs
from tests.support.reading import joined, read_all

SETTINGS = IngestConfig(open_timeout=5, read_timeout=5, stall_timeout=2)
ATTACHED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".m4a"])
async def test_a_file_is_read_whole_as_16k_mono(tmp_path: Path, suffix: str) -> None:
    media = encode_staircase(tmp_path / f"steps{suffix}", 4, channels=2)
    async with Source(str(media), SETTINGS, "room-1", attached_at=ATTACHED) as source:
        chunks = await read_all(source)
    samples = joined(chunks)
    assert samples.dtype == np.int16
    # Encoder padding adds a few milliseconds; losing or repeating a frame would not fit.
    assert len(samples) / SAMPLE_RATE == pytest.approx(4.0, abs=0.07)
    assert staircase_steps(samples) == [0, 1, 2, 3]
    # A file is stamped by media offset from the attach time, with no gap anywhere.
    offset = 0
    for chunk in chunks:
        assert chunk.wall_start == ATTACHED + timedelta(seconds=offset / SAMPLE_RATE)
        assert (chunk.gap_before, chunk.discontinuity) == (0.0, False)
        offset += len(chunk.samples)
    stats = source.stats
    assert (stats.state, stats.connects, stats.reconnects) == (StreamState.ENDED, 1, 0)
    assert stats.heard_seconds == pytest.approx(len(samples) / SAMPLE_RATE)


async def test_a_slow_consumer_holds_the_reader_back_without_losing_audio(tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "steps.mp3", 6)
    settings = SETTINGS.model_copy(update={"queue_chunks": 1})
    async with Source(str(media), settings, "room-1") as source:
        chunks: list[AudioChunk] = []
        async for chunk in source:
            # The reader is a whole file ahead at most one chunk: the queue is the limit.
            assert source.stats.heard_seconds <= (len(chunks) + 2) * 1.1
            chunks.append(chunk)
    assert staircase_steps(joined(chunks)) == [0, 1, 2, 3, 4, 5]


async def test_local_files_are_refused_when_not_allowed(tmp_path: Path) -> None:
    media = encode_tone(tmp_path / "a.wav", 440, 1, rate=16_000)
    settings = SETTINGS.model_copy(update={"allow_local_files": False})
    with pytest.raises(ProtocolNotAllowed, match="'file'"):
        Source(str(media), settings, "room-1")


async def test_a_disallowed_protocol_is_refused_before_anything_opens() -> None:
    with pytest.raises(ProtocolNotAllowed, match="protocol 'data' is not allowed"):
        Source("data:audio/wav;base64,UklGRg==", SETTINGS, "room-1")


async def test_a_missing_file_is_a_clear_error_not_a_retry(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.mp3"
    async with Source(str(missing), SETTINGS, "room-1") as source:
        with pytest.raises(SourceError, match=r"cannot open .*nowhere\.mp3.*No such file"):
            await read_all(source)
    assert source.stats.state is StreamState.ENDED
    assert source.stats.connects == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("suffix", [".mp3", ".aac"])
async def test_garbage_in_the_middle_is_skipped_and_counted(
    tmp_path: Path, suffix: str, seed: int
) -> None:
    clean = encode_staircase(tmp_path / f"steps{suffix}", 6).read_bytes()
    middle = len(clean) // 2
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(clean[:middle] + garbage(seed) + clean[middle:])
    async with Source(str(damaged), SETTINGS, "room-1") as source:
        chunks = await read_all(source)
    assert source.stats.corrupt_packets > 0
    steps = staircase_steps(joined(chunks))
    # Audio after the damage is still read, to the end; nothing is heard twice.
    assert steps[0] == 0
    assert steps[-1] == 5
    assert steps == sorted(set(steps))


@pytest.mark.parametrize(
    ("suffix", "first", "second"),
    [
        (".mp3", {"rate": 44_100}, {"rate": 22_050}),  # sample rate halves mid-stream
        (".aac", {"rate": 44_100}, {"rate": 44_100, "channels": 2}),  # mono becomes stereo
    ],
)
async def test_a_format_change_mid_stream_loses_no_audio(
    tmp_path: Path, suffix: str, first: dict[str, int], second: dict[str, int]
) -> None:
    part1 = encode_tone(tmp_path / f"a{suffix}", 500, 2, **first).read_bytes()
    part2 = encode_tone(tmp_path / f"b{suffix}", 1500, 2, **second).read_bytes()
    changing = tmp_path / f"changing{suffix}"
    changing.write_bytes(part1 + part2)
    async with Source(str(changing), SETTINGS, "room-1") as source:
        chunks = await read_all(source)
    assert source.stats.format_changes == 1
    assert [chunk.gap_before for chunk in chunks if chunk.discontinuity] == [0.0]
    samples = joined(chunks)
    assert len(samples) / SAMPLE_RATE == pytest.approx(4.0, abs=0.15)
    heard = {run.hz: run.windows for run in tone_runs(samples) if run.windows > 1}
    assert heard[500] >= 7  # of 8 quarter-seconds; codec priming takes a little
    assert heard[1500] >= 7


def _frame(rate: int, layout: str, seconds: float) -> av.AudioFrame:
    n = int(rate * seconds)
    tone = (np.sin(np.arange(n) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
    channels = 2 if layout == "stereo" else 1
    frame = av.AudioFrame.from_ndarray(
        np.repeat(tone, channels).reshape(1, -1), format="s16", layout=layout
    )
    frame.sample_rate = rate
    return frame


def test_the_resampler_is_flushed_before_a_rebuild_so_no_sample_is_lost() -> None:
    resampler = MonoResampler()
    out = []
    for rate, layout in [(44_100, "mono"), (22_050, "mono"), (22_050, "stereo"), (48_000, "mono")]:
        for _ in range(5):
            out += resampler.feed(_frame(rate, layout, 0.1))
    out += resampler.flush()
    assert resampler.changes == 3
    # 4 formats x 0.5 s each, to the sample (the resampler keeps none for itself).
    assert sum(len(pcm) for pcm in out) == 4 * SAMPLE_RATE // 2
