"""Faults the emulator injects on purpose, switchable per run (CLI flags or the constructor)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Faults", "RequestFault", "Shape", "TaskFault"]


class RequestFault(StrEnum):
    """What happens to one API request instead of (or after) a normal answer."""

    THROTTLE = "throttle"
    """``RequestLimitExceeded`` before anything is done."""
    SERVER_ERROR = "server_error"
    """HTTP 503 with a non-JSON body, before anything is done (a proxy failing)."""
    INTERNAL_ERROR = "internal_error"
    """``InternalError`` envelope, before anything is done."""
    HANG = "hang"
    """The request is handled, then the answer is held back past any sane client timeout."""


class TaskFault(StrEnum):
    """What happens to one task instead of being judged."""

    STUCK = "stuck"
    """Stays RUNNING forever."""
    ERROR = "error"
    """Ends ERROR (``URL_ERROR``) without fetching its audio."""
    LOST = "lost"
    """Never runs, and is unknown to the API from then on: ``ResourceNotFound`` to
    DescribeTaskDetail and CancelTask, absent from DescribeTasks (an expired TaskId)."""


class Shape(StrEnum):
    """A shape of answer the real service may send (its SDK's models allow it) that the
    emulator does not send unless asked."""

    NULL_NESTED = "null_nested"
    """DescribeTaskDetail and callbacks: every ``AudioSegments[].Result``, ``MediaInfo``,
    ``InputInfo`` and ``Labels`` null (the task's Suggestion and Label stay)."""
    FRACTIONAL_SCORES = "fractional_scores"
    """Every ``Score`` a float with a fraction (91 → 91.5)."""
    ODD_TYPES = "odd_types"
    """Neighbouring types: Create's ``Results`` a string, DescribeTasks's ``Total``
    non-numeric, ``OffsetTime`` and ``HitFlag`` numbers where strings are documented and
    back."""
    UNKNOWN_SUGGESTIONS = "unknown_suggestions"
    """``Block`` spelled ``Delete`` and ``Review`` spelled ``Reveiw``, everywhere."""
    EMPTY_SUMMARIES = "empty_summaries"
    """DescribeTasks: a finished task's ``Suggestion`` empty and its ``Labels`` null."""
    WRAPPED_CALLBACKS = "wrapped_callbacks"
    """Callback bodies wrapped as ``{"Response": {...}}`` like an API answer."""


@dataclass
class Faults:
    """Shares of requests/tasks that meet each fault, plus fixed counts for exact tests.

    ``error_first``/``stuck_first`` make the first N tasks created fail that way, which
    gives tests an exact, ordering-proof scenario; the shares drive storms and benchmarks.
    """

    throttle: float = 0.0
    server_errors: float = 0.0
    internal_errors: float = 0.0
    hangs: float = 0.0
    hang_seconds: float = 60.0
    latency: float = 0.0
    """Seconds added before every answer."""
    stuck: float = 0.0
    errors: float = 0.0
    error_first: int = 0
    stuck_first: int = 0
    lost_first: int = 0
    """The first N tasks created (after ``error_first`` and ``stuck_first``) are lost."""
    refused_first: int = 0
    """The first N tasks a Create names are refused in its answer (per-task ``Code``
    ``InternalError``, no task created) while the call itself succeeds."""
    shapes: frozenset[Shape] = frozenset()
    """Odd but allowed shapes of answer, all served while set."""
    page_limit: int | None = None
    """DescribeTasks refuses a ``Limit`` above this (``InvalidParameterValue``)."""
    padding_bytes: int = 0
    """Every DescribeTaskDetail answer grows by this many bytes (an unknown field)."""
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _tasks_seen: int = field(default=0, init=False, repr=False)
    _tasks_named: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("throttle", "server_errors", "internal_errors", "hangs", "stuck", "errors"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"fault share {name} must be within 0..1, got {share}")
        self._rng = random.Random(self.seed)

    def for_request(self) -> RequestFault | None:
        """Draw the fault (if any) for the next API request."""
        draw = self._rng.random()
        for fault, share in (
            (RequestFault.THROTTLE, self.throttle),
            (RequestFault.SERVER_ERROR, self.server_errors),
            (RequestFault.INTERNAL_ERROR, self.internal_errors),
            (RequestFault.HANG, self.hangs),
        ):
            if draw < share:
                return fault
            draw -= share
        return None

    def refuses_task(self) -> bool:
        """Whether the next task a Create names is refused (``refused_first``)."""
        self._tasks_named += 1
        return self._tasks_named <= self.refused_first

    def for_task(self) -> TaskFault | None:
        """Draw the fault (if any) for the next task created."""
        self._tasks_seen += 1
        if self._tasks_seen <= self.error_first:
            return TaskFault.ERROR
        if self._tasks_seen <= self.error_first + self.stuck_first:
            return TaskFault.STUCK
        if self._tasks_seen <= self.error_first + self.stuck_first + self.lost_first:
            return TaskFault.LOST
        draw = self._rng.random()
        if draw < self.errors:
            return TaskFault.ERROR
        if draw < self.errors + self.stuck:
            return TaskFault.STUCK
        return None
