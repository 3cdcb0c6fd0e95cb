"""``Supervisor``: the one task group of a process, and the named loops that run in it.

Every background loop of the daemon (the publisher, the incident timer, the AMS submitter and
poller, the streams monitor, retention) runs here under its name. A loop that raises is
logged, reported through ``on_crash`` (the daemon counts it in ``/metrics`` and publishes a
health event) and started again after a ``Backoff`` delay, so one failing loop neither
cancels its neighbours nor stops the daemon. Only cancellation stops a loop for good.

Owners start their loops on entry and stop them on exit, in reverse order of start-up, so
the group is idle when it closes; ``spawn`` adds a plain owned task (a stream's runner).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

from streamguard.core.backoff import Backoff

__all__ = ["CrashHandler", "Loop", "Supervisor", "shared_or_own"]

log = logging.getLogger("streamguard.supervisor")

CrashHandler = Callable[[str, BaseException], Awaitable[None]]
LoopFactory = Callable[[], Coroutine[Any, Any, None]]

RESTART_BACKOFF = Backoff(initial=0.5, maximum=30.0, multiplier=2.0, jitter=0.2)
HEALTHY_SECONDS = 60.0
"""A loop that ran this long before it raised starts its backoff over."""


class Loop:
    """One supervised loop: its task, how often it crashed, and how to stop it."""

    task: asyncio.Task[None]
    """Set by ``Supervisor.start`` as soon as the loop exists."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.crashes = 0
        self.last_error: str | None = None

    async def stop(self) -> None:
        """Cancel the loop and wait until it has stopped."""
        self.task.cancel()
        await asyncio.wait([self.task])

    async def finished(self) -> None:
        """Wait for the loop to return by itself (bound it with ``asyncio.timeout``)."""
        await asyncio.wait([self.task])


class Supervisor:
    """Owns one ``asyncio.TaskGroup``; use as ``async with Supervisor() as supervisor``."""

    def __init__(self, *, backoff: Backoff = RESTART_BACKOFF) -> None:
        self._group = asyncio.TaskGroup()
        self._backoff = backoff
        self._on_crash: CrashHandler | None = None
        self.loops: dict[str, Loop] = {}

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Owners stop their loops on their own exit; whatever is left is stopped here.
        for loop in reversed(self.loops.values()):
            loop.task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    def report_to(self, on_crash: CrashHandler) -> None:
        """Tell ``on_crash`` about every crash from now on (set once the bus is up)."""
        self._on_crash = on_crash

    def start(self, name: str, factory: LoopFactory) -> Loop:
        """Run ``factory()`` as the loop ``name``, restarting it whenever it raises.

        A loop that returns is done (it was asked to stop); it is not restarted.
        """
        if name in self.loops and not self.loops[name].task.done():
            raise RuntimeError(f"loop {name!r} is already running")
        loop = Loop(name)
        loop.task = self._group.create_task(self._supervise(loop, factory), name=name)
        self.loops[name] = loop
        return loop

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` once as a named task of the group; its owner awaits it."""
        return self._group.create_task(coro, name=name)

    async def _supervise(self, loop: Loop, factory: LoopFactory) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await factory()
            except Exception as exc:  # a loop must not take its neighbours down
                if time.monotonic() - started >= HEALTHY_SECONDS:
                    failures = 0
                failures += 1
                loop.crashes += 1
                loop.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._backoff.delay(failures)
                log.error(
                    "loop %s crashed (%s); restarting in %.1f s",
                    loop.name,
                    loop.last_error,
                    delay,
                    exc_info=exc,
                    extra={"loop": loop.name},
                )
                await self._report(loop.name, exc)
                await asyncio.sleep(delay)
            else:
                return

    async def _report(self, name: str, exc: BaseException) -> None:
        if self._on_crash is None:
            return
        try:
            await self._on_crash(name, exc)
        except Exception as report_error:  # reporting must not crash the loop
            log.error("could not report the crash of loop %s: %s", name, report_error)


async def shared_or_own(shared: Supervisor | None, stack: AsyncExitStack) -> Supervisor:
    """``shared`` (the daemon's), or a supervisor of its own entered on ``stack`` for a
    component used alone (``streamguard moderate``, tests, benchmarks)."""
    if shared is not None:
        return shared
    return await stack.enter_async_context(Supervisor())
