"""What a source hands the segmenter: a run of decoded 16 kHz mono s16 audio."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

__all__ = ["SAMPLE_RATE", "AudioChunk", "Pcm"]

SAMPLE_RATE = 16_000
"""Every source is resampled to this rate, mono, signed 16-bit."""

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Decoded audio, in order, as heard from one source.

    ``wall_start`` is the UTC time the first sample was heard. ``gap_before`` is how many
    seconds of the room's audio were not heard just before this chunk (a reconnect), and
    ``discontinuity`` marks a break in the media timeline (reconnect, HLS discontinuity,
    format change) even where no audio was lost.
    """

    samples: Pcm
    wall_start: datetime
    gap_before: float = 0.0
    discontinuity: bool = False

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE
