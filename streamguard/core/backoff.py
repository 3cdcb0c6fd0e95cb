"""``Backoff``: the one delay schedule of every retry and reconnect loop.

Exponential from ``initial`` by ``multiplier``, with ``±jitter`` (a share of the delay) so
peers that failed together do not retry together, and the cap applied *after* the jitter, so
no delay ever exceeds ``maximum``. ``attempts`` and ``total_seconds`` bound a retry loop
that should give up (``None``: a reconnect loop that never does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backoff", "BackoffSettings"]


class BackoffSettings(Protocol):
    """What a config section needs to describe a schedule (e.g. ``config.ingest.BackoffConfig``)."""

    @property
    def initial(self) -> float: ...

    @property
    def maximum(self) -> float: ...

    @property
    def multiplier(self) -> float: ...

    @property
    def jitter(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """A bounded, jittered exponential schedule; ``delay(n)`` is the wait before retry ``n``."""

    initial: float = 1.0
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    attempts: int | None = None
    """Attempts in all (the first one included) before giving up; ``None``: never give up."""
    total_seconds: float | None = None
    """Time since the first attempt after which no retry starts; ``None``: no limit."""

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff needs multiplier >= 1 and 0 <= jitter <= 1")

    @classmethod
    def of(
        cls,
        settings: BackoffSettings,
        *,
        attempts: int | None = None,
        total_seconds: float | None = None,
    ) -> Backoff:
        """The schedule a config section describes, with optional ``attempts``/``total_seconds``."""
        return cls(
            initial=settings.initial,
            maximum=settings.maximum,
            multiplier=settings.multiplier,
            jitter=settings.jitter,
            attempts=attempts,
            total_seconds=total_seconds,
        )

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
        base = self.initial * self.multiplier ** max(0, retry - 1)
        spread = (rng or _RNG).uniform(-self.jitter, self.jitter)
        # Capped after the jitter: the jitter may lower a capped delay, never raise it.
        return min(self.maximum, min(base, self.maximum) * (1.0 + spread))

    def gives_up(self, attempts_made: int, elapsed: float) -> bool:
        """True when no further attempt may start after ``attempts_made`` in ``elapsed`` s."""
        if self.attempts is not None and attempts_made >= self.attempts:
            return True
        return self.total_seconds is not None and elapsed >= self.total_seconds


_RNG = random.Random()
