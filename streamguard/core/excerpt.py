"""The part of a segment sent to AMS: pieces of it joined end to end into one clip.

AMS bills every second it hears. The speech gate knows where the speech is, so the AMS path
sends only that: each speech run with a little audio either side, the pauses between runs
shortened (``Excerpt.around``). One segment is still one task. AMS answers in clip time;
``segment_time`` maps those times back onto the segment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, Pcm

__all__ = ["Excerpt"]


@dataclass(frozen=True, slots=True)
class Excerpt:
    """``pieces``: (start, end) seconds within the segment, in order, not overlapping."""

    pieces: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.pieces:
            raise ValueError("an excerpt holds at least one piece of the segment")
        previous = 0.0
        for start, end in self.pieces:
            if not previous <= start < end:
                raise ValueError(f"excerpt pieces must be ordered and not empty: {self.pieces}")
            previous = end

    @classmethod
    def whole(cls, duration: float) -> Excerpt:
        """All of a segment of ``duration`` seconds."""
        return cls(((0.0, duration),))

    @classmethod
    def around(
        cls, runs: Sequence[tuple[float, float]], duration: float, *, pad: float
    ) -> Excerpt | None:
        """Speech ``runs`` padded by ``pad`` seconds each side (within the segment), runs
        closer than ``2 * pad`` joined: a pause longer than that is heard as ``2 * pad``.
        None when no run holds any audio of the segment."""
        pieces: list[tuple[float, float]] = []
        for start, end in sorted(runs):
            start, end = max(0.0, start - pad), min(duration, end + pad)
            if end <= start:
                continue
            if pieces and start <= pieces[-1][1]:
                pieces[-1] = (pieces[-1][0], max(end, pieces[-1][1]))
            else:
                pieces.append((start, end))
        return cls(tuple(pieces)) if pieces else None

    @property
    def duration(self) -> float:
        """Seconds of audio in the clip (what AMS bills)."""
        return sum(end - start for start, end in self.pieces)

    @property
    def start(self) -> float:
        return self.pieces[0][0]

    def is_whole(self, duration: float) -> bool:
        """Whether the excerpt is the whole segment of ``duration`` seconds."""
        return len(self.pieces) == 1 and self.start <= 0 and self.pieces[0][1] >= duration

    def segment_time(self, clip_time: float, *, end: bool = False) -> float:
        """Where ``clip_time`` (seconds into the clip) falls in the segment. At a join, a
        start maps to the next piece's start and an ``end`` to the previous piece's end."""
        elapsed = 0.0
        for start, stop in self.pieces:
            length = stop - start
            if clip_time < elapsed + length or (end and clip_time <= elapsed + length):
                return start + max(0.0, clip_time - elapsed)
            elapsed += length
        return self.pieces[-1][1] + (clip_time - elapsed)

    def samples(self, samples: Pcm) -> Pcm:
        """The clip's audio: the pieces of the segment's ``samples``, joined."""
        parts = [samples[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)] for a, b in self.pieces]
        return np.concatenate(parts)

    def to_json(self) -> str:
        return json.dumps([[round(a, 4), round(b, 4)] for a, b in self.pieces])

    @classmethod
    def from_json(cls, text: str) -> Excerpt:
        return cls(tuple((float(a), float(b)) for a, b in json.loads(text)))
