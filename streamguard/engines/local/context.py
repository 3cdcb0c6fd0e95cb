"""Context across cuts: the tail of each stream's previous segment.

A sentence cut by a segment boundary ("I know where you" | "live, see you soon") is
understood only when both halves are read together. ``StreamTails`` keeps the last words
of each stream's previous segment, and whether the semantic layer already flagged them, so
the next segment is judged with them and a hit is reported once: on the segment where it
was first found. A tail is used only by the very next segment of the same attachment, with
no gap before it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from streamguard.core.segment import Segment, SegmentFlag

__all__ = ["StreamTails", "Tail", "tail_words"]

MAX_STREAMS = 4096
"""Tails kept at most (the least recently judged stream's goes first)."""


@dataclass(frozen=True, slots=True)
class Tail:
    """The end of a stream's previous segment, as the next one is judged with it."""

    text: str
    flagged_library: str | None = None
    """The example library the semantic layer reported on that segment, if any."""


def tail_words(text: str, words: int) -> str:
    """The last ``words`` words of ``text``."""
    return " ".join(text.split()[-words:]) if words > 0 else ""


class StreamTails:
    """Per stream, the tail of the segment judged last; safe to use from worker threads."""

    def __init__(self, words: int) -> None:
        self.words = words
        self._tails: OrderedDict[str, tuple[datetime, int, Tail]] = OrderedDict()
        self._lock = threading.Lock()

    def before(self, segment: Segment) -> Tail | None:
        """The tail ``segment`` follows on from, or None (first segment, gap, other run)."""
        if self.words <= 0 or SegmentFlag.GAP_BEFORE in segment.flags:
            return None
        with self._lock:
            kept = self._tails.get(segment.stream_id)
        if kept is None:
            return None
        attached_at, seq, tail = kept
        if attached_at != segment.attached_at or seq != segment.seq - 1:
            return None
        return tail

    def remember(self, segment: Segment, text: str, flagged_library: str | None) -> None:
        """``segment`` was judged: its ``text`` and what the semantic layer reported."""
        if self.words <= 0:
            return
        tail = Tail(tail_words(text, self.words), flagged_library)
        with self._lock:
            self._tails[segment.stream_id] = (segment.attached_at, segment.seq, tail)
            self._tails.move_to_end(segment.stream_id)
            while len(self._tails) > MAX_STREAMS:
                self._tails.popitem(last=False)
