"""Test audio made here: tones, noise, silence as 16 kHz PCM; segments; PyAV encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.segment import Segment

__all__ = ["encode", "make_segment", "noise", "silence", "tone"]

MARKER_HZ = 1000.0


def tone(seconds: float, freq: float = MARKER_HZ, amplitude: float = 0.5) -> Pcm:
    """A sine tone (the fake engine's marker at 1 kHz)."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def noise(seconds: float, amplitude: float = 0.3, seed: int = 0) -> Pcm:
    """Loud white noise: 'speech' to an energy gate, no marker tone."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-amplitude, amplitude, round(seconds * SAMPLE_RATE)) * 32767
    return values.astype(np.int16)


def silence(seconds: float) -> Pcm:
    """Digital silence."""
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def make_segment(
    stream_id: str,
    seq: int,
    samples: Pcm,
    attached_at: datetime | None = None,
) -> Segment:
    """A segment as the segmenter would cut it, ``seq`` segments after attach."""
    attached = attached_at or datetime(2026, 1, 1, tzinfo=UTC)
    seconds = len(samples) / SAMPLE_RATE
    started = attached + timedelta(seconds=seq * seconds)
    return Segment(
        stream_id=stream_id,
        seq=seq,
        attached_at=attached,
        samples=samples,
        started_at=started,
        ended_at=started + timedelta(seconds=seconds),
        media_start=seq * seconds,
        gap_before=0.0,
        flags=frozenset(),
    )


def encode(samples: Pcm, path: Path) -> Path:
    """Encode mono 16 kHz PCM to ``path`` (.wav as PCM s16, .mp3 with libmp3lame)."""
    codec = {".wav": "pcm_s16le", ".mp3": "libmp3lame"}[path.suffix]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        assert isinstance(stream, av.AudioStream)
        if codec == "libmp3lame":
            stream.bit_rate = 32_000
        frame_format = "s16p" if codec == "libmp3lame" else "s16"
        step = 1152 if codec == "libmp3lame" else SAMPLE_RATE
        for start in range(0, len(samples), step):
            part = samples[start : start + step]
            frame = av.AudioFrame.from_ndarray(
                part.reshape(1, -1), format=frame_format, layout="mono"
            )
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
