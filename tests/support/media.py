"""Test media made on the spot with the ffmpeg CLI, and a cheap check of what was heard.

The media is a "tone staircase": second ``i`` is a sine at ``base + step * i`` Hz. Heard
audio is cut into short windows whose dominant frequency says which second of the media
each came from, so a test can tell lost audio (a step skipped) from duplicated audio (a
step heard again, or for too long) without comparing samples.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, Pcm

__all__ = ["ToneRun", "encode_staircase", "encode_tone", "staircase_steps", "tone_runs"]

BASE_HZ = 400
STEP_HZ = 100


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def _codec_args(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".mp3":
        return ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"]
    if suffix == ".aac":
        return ["-c:a", "aac", "-b:a", "64k", "-f", "adts"]
    if suffix == ".m4a":
        return ["-c:a", "aac", "-b:a", "64k", "-f", "mp4"]
    if suffix == ".wav":
        return ["-c:a", "pcm_s16le", "-f", "wav"]
    raise ValueError(f"no encoder set up for {suffix!r}")


def encode_staircase(
    path: Path, seconds: int, *, rate: int = 44_100, channels: int = 1, first_step: int = 0
) -> Path:
    """Write ``seconds`` of tone staircase (step ``first_step`` onwards) in ``path``'s format."""
    expr = f"0.5*sin(2*PI*({BASE_HZ}+{STEP_HZ}*(floor(t)+{first_step}))*t)"
    _ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc='{expr}':s={rate}:d={seconds}",
            "-ac",
            str(channels),
            *_codec_args(path),
            str(path),
        ]
    )
    return path


def encode_tone(path: Path, hz: int, seconds: float, *, rate: int, channels: int = 1) -> Path:
    """Write a plain sine of ``hz`` in ``path``'s format."""
    _ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={hz}:sample_rate={rate}:duration={seconds}",
            "-ac",
            str(channels),
            *_codec_args(path),
            str(path),
        ]
    )
    return path


@dataclass(frozen=True, slots=True)
class ToneRun:
    """``windows`` consecutive analysis windows whose dominant frequency was ``hz``."""

    hz: int
    windows: int


def tone_runs(samples: Pcm, window: float = 0.25) -> list[ToneRun]:
    """The dominant frequency of each ``window`` of audio, with equal neighbours merged.

    Frequencies are rounded to the nearest 50 Hz; silent windows count as 0 Hz.
    """
    size = int(window * SAMPLE_RATE)
    runs: list[ToneRun] = []
    for start in range(0, len(samples) - size + 1, size):
        piece = samples[start : start + size].astype(np.float64)
        if np.abs(piece).max() < 500:
            hz = 0
        else:
            spectrum = np.abs(np.fft.rfft(piece * np.hanning(size)))
            hz = int(round(np.argmax(spectrum) * SAMPLE_RATE / size / 50.0) * 50)
        if runs and runs[-1].hz == hz:
            runs[-1] = ToneRun(hz, runs[-1].windows + 1)
        else:
            runs.append(ToneRun(hz, 1))
    return runs


def staircase_steps(samples: Pcm) -> list[int]:
    """Which staircase steps were heard, in order (windows straddling a step are ignored)."""
    steps = []
    for run in tone_runs(samples):
        if run.hz and run.windows >= 2:
            steps.append((run.hz - BASE_HZ) // STEP_HZ)
    return steps
