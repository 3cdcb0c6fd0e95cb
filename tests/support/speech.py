"""Generated speech for engine tests: utterances cached per session, wrapped into segments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.segment import Segment
from streamguard.demo.samples import mix, music, noise, silence, speak

__all__ = ["CONDITIONS", "SpeechCache", "in_condition", "segment_of"]

ATTACHED = datetime(2026, 1, 1, tzinfo=UTC)


class SpeechCache:
    """Utterances synthesised once per session and kept as .npy files in a tmp directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, text: str, voice: str) -> Pcm:
        name = f"{abs(hash((text, voice))):x}.npy"
        path = self.directory / name
        if not path.exists():
            np.save(path, speak(text, voice))
        return np.asarray(np.load(path), dtype=np.int16)


CONDITIONS = ("clean", "noise10", "music10")


def in_condition(audio: Pcm, condition: str, seed: int = 0) -> Pcm:
    """``audio`` clean, or over noise or music at 10 dB speech-to-background ratio."""
    seconds = len(audio) / SAMPLE_RATE
    if condition == "clean":
        return audio
    if condition == "noise10":
        return mix(audio, noise(seconds, seed), 10.0)
    if condition == "music10":
        return mix(audio, music(seconds, seed), 10.0)
    raise ValueError(f"unknown condition {condition!r}")


def segment_of(
    speech: Pcm,
    condition: str = "clean",
    *,
    lead: float = 1.5,
    seconds: float = 10.0,
    seq: int = 0,
) -> Segment:
    """A segment of at least ``seconds``: ``speech`` starting ``lead`` seconds in, the
    background of ``condition`` under all of it."""
    tail = max(0.5, seconds - lead - len(speech) / SAMPLE_RATE)
    audio = in_condition(np.concatenate([silence(lead), speech, silence(tail)]), condition)
    return Segment(
        stream_id="room-1",
        seq=seq,
        attached_at=ATTACHED,
        samples=audio,
        started_at=ATTACHED,
        ended_at=ATTACHED,
        media_start=0.0,
        gap_before=0.0,
        flags=frozenset(),
    )
