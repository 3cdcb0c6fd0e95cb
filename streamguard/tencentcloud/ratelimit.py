"""A token bucket that spaces calls to stay under a requests-per-second limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allows ``rate`` acquisitions a second on average, bursts up to ``burst``.

    Waiters are served in arrival order (one lock), so a storm of callers cannot starve one.
    ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = asyncio.Lock()

    def try_acquire(self) -> bool:
        """Take a token if one is there now (what a server uses to refuse excess calls)."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait until a token is available and take it."""
        async with self._lock:
            if self.try_acquire():
                return
            await self._sleep((1 - self._tokens) / self.rate)
            # The token is ours after that wait; taking it outright (the balance may dip a
            # rounding error below zero) avoids re-checking forever on float residue.
            self._refill()
            self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
