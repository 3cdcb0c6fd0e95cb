"""Encoded clips decode back to exactly the samples' duration, in every format."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.errors import EncodeError
from streamguard.ingest.encoder import ClipFormat, encode_clip, encode_pcm


def tone(samples: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(samples) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def decoded(path: Path) -> tuple[int, int, float]:
    """(samples decoded, samples the container declares, dominant frequency)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        assert stream.duration is not None
        assert stream.time_base is not None
        declared = round(stream.duration * stream.time_base * SAMPLE_RATE)
    pcm = np.concatenate(frames).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm))
    return len(pcm), declared, float(np.argmax(spectrum) * SAMPLE_RATE / len(pcm))


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "m4a"])
@pytest.mark.parametrize("samples", [15 * SAMPLE_RATE, 3 * SAMPLE_RATE + 123])
def test_clip_has_the_exact_duration(tmp_path: Path, fmt: ClipFormat, samples: int) -> None:
    clip = encode_pcm(tone(samples), tmp_path / f"s.{fmt}", fmt)
    got, declared, peak = decoded(clip.path)
    assert clip.samples == samples
    assert declared == samples
    if fmt != "m4a":  # FFmpeg's AAC decoder does not trim the end padding the edit list marks
        assert got == samples
    assert peak == pytest.approx(440, abs=5)
    assert len(clip.sha256) == 64
    assert clip.size == clip.path.stat().st_size
    assert not list(tmp_path.glob("*.part"))


async def test_async_encoding_gives_the_same_clip(tmp_path: Path) -> None:
    clip = await encode_clip(tone(SAMPLE_RATE), tmp_path / "a.mp3", "mp3")
    assert decoded(clip.path)[0] == SAMPLE_RATE


def test_unwritable_destination_is_an_encode_error(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match="cannot encode mp3"):
        encode_pcm(tone(SAMPLE_RATE), tmp_path / "missing" / "a.mp3", "mp3")
