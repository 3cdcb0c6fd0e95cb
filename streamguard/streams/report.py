"""``StreamReport``: how one attached stream is doing, as the API and metrics read it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streamguard.config.streams import StreamConfig
from streamguard.core.status import StreamState
from streamguard.core.verdict import Outcome, Verdict

__all__ = ["StreamReport", "StreamTally", "seconds_kind"]

_OUTCOME_SECONDS = {
    Outcome.MODERATED: "moderated",
    Outcome.NO_SPEECH: "skipped_silent",
    Outcome.SKIPPED_OVERLOADED: "skipped_overloaded",
    Outcome.FAILED: "failed",
    Outcome.NOT_MODERATED: "failed",
}


def seconds_kind(outcome: Outcome) -> str:
    """The ``audio_seconds`` kind of a segment with this outcome."""
    return _OUTCOME_SECONDS[outcome]


@dataclass(slots=True)
class StreamTally:
    """What a stream's runner has counted since it was attached. ``failed_attempts``: the
    source's consecutive attempts to connect that brought no audio (zero once it is heard)."""

    reconnects: int = 0
    last_audio_at: datetime | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    suggestions: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(_OUTCOME_SECONDS.values(), 0.0)
    )
    failed_attempts: int = 0
    audio_track: bool | None = None
    """False for a stream with video and no audio (read for its frames); None until told."""

    def copy(self) -> StreamTally:
        """A copy that later counting does not change."""
        return StreamTally(
            self.reconnects,
            self.last_audio_at,
            Counter(self.outcomes),
            Counter(self.suggestions),
            dict(self.seconds),
            self.failed_attempts,
            self.audio_track,
        )

    def heard(self, wall_start: datetime, duration: float) -> None:
        """Audio up to ``wall_start + duration`` was heard."""
        self.last_audio_at = wall_start + timedelta(seconds=duration)

    def judged(self, verdict: Verdict, duration: float) -> None:
        """A segment of ``duration`` seconds got ``verdict``."""
        self.outcomes[verdict.outcome.value] += 1
        if verdict.outcome is Outcome.MODERATED:
            self.suggestions[verdict.suggestion.value] += 1
        self.seconds[seconds_kind(verdict.outcome)] += duration


@dataclass(frozen=True, slots=True)
class StreamReport:
    """A snapshot of one stream: its config, state, last error and tallies."""

    config: StreamConfig
    state: StreamState
    last_error: str | None
    tally: StreamTally

    @property
    def stream_id(self) -> str:
        """The stream's id."""
        return self.config.id

    def to_json(self) -> dict[str, Any]:
        """The API's view: the stream's config and how it is doing."""
        tally = self.tally
        unjudged = tally.seconds["skipped_overloaded"] + tally.seconds["failed"]
        return {
            **self.config.model_dump(),
            "state": self.state.value,
            "last_audio_at": tally.last_audio_at.isoformat() if tally.last_audio_at else None,
            "reconnects": tally.reconnects,
            "failed_attempts": tally.failed_attempts,
            "segments": sum(tally.outcomes.values()),
            "outcomes": dict(tally.outcomes),
            "suggestions": dict(tally.suggestions),
            "minutes_moderated": round(tally.seconds["moderated"] / 60, 3),
            "minutes_skipped_silent": round(tally.seconds["skipped_silent"] / 60, 3),
            "minutes_unjudged": round(unjudged / 60, 3),
            "last_error": self.last_error,
            "audio_track": tally.audio_track,
        }
