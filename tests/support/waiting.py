"""Waiting for a condition in async tests, with a generous bound instead of a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], within: float = 30.0, interval: float = 0.02
) -> None:
    """Return once ``check()`` is true; raise TimeoutError if it is not within ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(interval)
