"""How reading a source has gone: the counters its reader thread keeps and the loop reads.

The reader thread writes a :class:`Tally` as it connects, decodes and hands audio over; the
event loop reads it any time as a :class:`SourceStats` snapshot. One lock guards it, held
only for a few assignments, so neither side ever waits on the other's work.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.status import StreamState

__all__ = ["Gap", "SourceStats", "Tally"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Room audio that was not heard: from ``at`` (UTC) for ``seconds``."""

    at: datetime
    seconds: float


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A snapshot of how reading a source has gone so far.

    ``state`` is ``CONNECTING`` until the first audio is handed over, then ``ONLINE``;
    ``RECONNECTING`` after a connection that brought audio ended, ``FAILING`` while attempts
    bring none. ``failed_attempts`` counts consecutive opens that brought no audio (reset
    when audio is heard, together with ``last_error``); ``stalls`` counts connections given
    up because no audio came within the stall (or read) timeout; ``format_changes`` counts
    mid-stream sample-rate or layout changes. ``live`` is ``None`` until a connection told
    whether the source is live; ``duration`` is a recording's length, when it says;
    ``audio_track`` is false for a source with video and no audio (read for its frames: no
    segments, and a frame handed over counts as audio heard would).
    """

    state: StreamState
    connects: int
    reconnects: int
    failed_attempts: int
    corrupt_packets: int
    stalls: int
    format_changes: int
    gaps: tuple[Gap, ...]
    heard_seconds: float
    last_error: str | None
    live: bool | None = None
    duration: float | None = None
    audio_track: bool | None = None


@dataclass
class _Counts:
    state: StreamState = StreamState.CONNECTING
    connects: int = 0
    failed_attempts: int = 0
    corrupt_packets: int = 0
    stalls: int = 0
    format_changes: int = 0
    gaps: list[Gap] = field(default_factory=list)
    heard_samples: int = 0
    last_error: str | None = None
    live: bool | None = None
    duration: float | None = None
    audio_track: bool | None = None


class Tally:
    """The live counters behind :class:`SourceStats`: written by the reader thread, read
    from the event loop through :meth:`snapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = _Counts()

    def snapshot(self) -> SourceStats:
        """The counters as they are now."""
        with self._lock:
            c = self._counts
            return SourceStats(
                state=c.state,
                connects=c.connects,
                reconnects=max(0, c.connects - 1),
                failed_attempts=c.failed_attempts,
                corrupt_packets=c.corrupt_packets,
                stalls=c.stalls,
                format_changes=c.format_changes,
                gaps=tuple(c.gaps),
                heard_seconds=c.heard_samples / SAMPLE_RATE,
                last_error=c.last_error,
                live=c.live,
                duration=c.duration,
                audio_track=c.audio_track,
            )

    def connected(self, *, live: bool, duration: float | None, audio: bool = True) -> None:
        """A connection opened; it is ``live`` or a recording, and has an audio stream (or,
        ``audio`` false, video alone)."""
        with self._lock:
            self._counts.audio_track = audio
            self._counts.connects += 1
            self._counts.live = live
            self._counts.duration = None if live else duration

    def reconnecting(self, failures: int, reason: str) -> None:
        """A live connection ended for ``reason``; ``failures`` in a row brought no audio
        (none: it did, and the source is reconnecting; some: it is failing)."""
        with self._lock:
            self._counts.failed_attempts = failures
            self._counts.last_error = reason
            self._counts.state = StreamState.FAILING if failures else StreamState.RECONNECTING

    def ended(self) -> None:
        """The reader is done for good."""
        with self._lock:
            self._counts.state = StreamState.ENDED

    def saw_pictures(self) -> None:
        """A source without audio handed a frame over: as :meth:`heard` for audio."""
        self.heard(0)

    def heard(self, samples: int) -> None:
        """``samples`` were handed to the consumer, which proves the connection works: the
        source is online and what went wrong before is history."""
        with self._lock:
            self._counts.heard_samples += samples
            self._counts.failed_attempts = 0
            self._counts.last_error = None
            if self._counts.state is not StreamState.ENDED:
                self._counts.state = StreamState.ONLINE

    def gap(self, gap: Gap) -> None:
        """Room audio that was not heard."""
        with self._lock:
            self._counts.gaps.append(gap)

    def corrupt_packet(self) -> None:
        """The decoder rejected a packet, which was skipped."""
        with self._lock:
            self._counts.corrupt_packets += 1

    def stall(self) -> None:
        """A connection was given up because no audio (or no data) came in time."""
        with self._lock:
            self._counts.stalls += 1

    def format_change(self) -> None:
        """The sample rate or channel layout changed mid-stream."""
        with self._lock:
            self._counts.format_changes += 1
