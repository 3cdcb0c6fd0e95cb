"""What the local engine has done, and what an operator should hear about.

``EngineStats`` keeps the running totals and raises ``HealthEvent``s (logged, and passed to
the engine's ``on_health`` callback); ``EngineCounters`` is the snapshot read from outside
(``LocalEngine.counters``), for the API and the daemon's ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from streamguard.core.verdict import Outcome, Verdict

__all__ = ["EngineCounters", "EngineStats", "HealthEvent", "HealthKind", "Usage"]

log = logging.getLogger("streamguard.engines.local.engine")
"""The engine's logger: what its parts report is the engine's to say, under one name."""


class HealthKind(StrEnum):
    """What went wrong, as an operator sees it (a Prometheus label value)."""

    OVERLOADED = "overloaded"
    """A segment was skipped because the backlog was full."""
    GATE_FAILED = "gate_failed"
    """The speech gate raised; the segment was recognised whole (fail open)."""
    RECOGNITION_FAILED = "recognition_failed"
    """A segment could not be judged; its verdict is ``failed``."""
    LIBRARY_RELOAD_FAILED = "library_reload_failed"
    """A changed library file is broken; the previous version stays in use."""


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """Something an operator should see (the daemon forwards these to health and metrics)."""

    kind: HealthKind
    message: str
    segment_id: str | None = None


@dataclass(frozen=True, slots=True)
class EngineCounters:
    """A snapshot of what the engine has done since it started.

    Every field only grows, except the gauges ``backlog_depth``, ``backlog_limit`` and
    ``running``, which describe the engine now.
    """

    segments: int
    moderated: int
    no_speech: int
    skipped_overloaded: int
    failed: int
    gate_failures: int
    hits: int
    backlog_depth: int
    """Segments admitted and waiting now (for the gate, or for recognition after it)."""
    backlog_limit: int
    running: int
    """Segments whose work is on a worker thread now (a shared whisper pass counts each)."""
    audio_seconds: float
    """Audio of every segment that reached a worker."""
    speech_seconds: float
    recognised_seconds: float
    """Audio actually handed to speech recognition (speech regions only)."""
    rechecked_seconds: float
    """Audio heard a second time by the second listen (near misses, with context)."""
    no_speech_seconds_saved: float
    """Audio of segments without speech: never recognised (nor billed, on the AMS path)."""
    busy_seconds: float
    """Wall-clock seconds workers spent judging (gate, recognition, matching)."""
    library_reloads: int
    library_reload_failures: int
    health_events: Mapping[HealthKind, int]
    """Health events raised so far, by kind (every kind present, 0 when none)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready counters, seconds rounded to milliseconds."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class Usage:
    """What judging one segment cost: the seconds it adds to the counters."""

    audio_seconds: float
    speech_seconds: float = 0.0
    recognised_seconds: float = 0.0
    busy_seconds: float = 0.0
    rechecked_seconds: float = 0.0


class EngineStats:
    """The engine's running totals; raises health events (log, then ``on_health``).

    Used on the event loop only, so the totals need no lock.
    """

    def __init__(self, on_health: Callable[[HealthEvent], None] | None = None) -> None:
        self._on_health = on_health
        self._counts: dict[str, int] = dict.fromkeys(
            ("segments", "moderated", "no_speech", "skipped", "failed", "gate_failures", "hits"), 0
        )
        self._seconds: dict[str, float] = dict.fromkeys(
            ("audio", "speech", "recognised", "rechecked", "no_speech", "busy"), 0.0
        )
        self._health: dict[HealthKind, int] = dict.fromkeys(HealthKind, 0)

    def raise_event(self, event: HealthEvent) -> None:
        """Log ``event``, count it, and hand it to ``on_health``."""
        log.warning("local engine: %s: %s", event.kind, event.message)
        self._health[event.kind] += 1
        if self._on_health is not None:
            self._on_health(event)

    def arrived(self) -> None:
        """A segment was handed to the engine (whatever becomes of it)."""
        self._counts["segments"] += 1

    def failed(self, event: HealthEvent | None = None) -> None:
        """A segment could not be judged; ``event`` says why, if an operator should know."""
        self._counts["failed"] += 1
        if event is not None:
            self.raise_event(event)

    def skipped(self, event: HealthEvent) -> None:
        """A segment was skipped because the backlog was full."""
        self._counts["skipped"] += 1
        self.raise_event(event)

    def judged(self, verdict: Verdict, usage: Usage, events: tuple[HealthEvent, ...]) -> None:
        """Count a judged segment's verdict and cost, then raise the events its judging met."""
        if verdict.outcome is Outcome.NO_SPEECH:
            self._counts["no_speech"] += 1
            self._seconds["no_speech"] += usage.audio_seconds
        else:
            self._counts["moderated"] += 1
        self._counts["hits"] += int(verdict.hit)
        self._counts["gate_failures"] += int("gate_error" in verdict.details)
        self._seconds["audio"] += usage.audio_seconds
        self._seconds["speech"] += usage.speech_seconds
        self._seconds["recognised"] += usage.recognised_seconds
        self._seconds["rechecked"] += usage.rechecked_seconds
        self._seconds["busy"] += usage.busy_seconds
        for event in events:
            self.raise_event(event)

    def snapshot(
        self,
        *,
        backlog_depth: int,
        backlog_limit: int,
        running: int,
        library_reloads: int,
        library_reload_failures: int,
    ) -> EngineCounters:
        """The totals so far, with the scheduler's load now and the libraries' reload counts."""
        return EngineCounters(
            segments=self._counts["segments"],
            moderated=self._counts["moderated"],
            no_speech=self._counts["no_speech"],
            skipped_overloaded=self._counts["skipped"],
            failed=self._counts["failed"],
            gate_failures=self._counts["gate_failures"],
            hits=self._counts["hits"],
            backlog_depth=backlog_depth,
            backlog_limit=backlog_limit,
            running=running,
            audio_seconds=self._seconds["audio"],
            speech_seconds=self._seconds["speech"],
            recognised_seconds=self._seconds["recognised"],
            rechecked_seconds=self._seconds["rechecked"],
            no_speech_seconds_saved=self._seconds["no_speech"],
            busy_seconds=self._seconds["busy"],
            library_reloads=library_reloads,
            library_reload_failures=library_reload_failures,
            health_events=dict(self._health),
        )
