"""The spool: writes the disk refused, kept in memory (bounded) and written when it takes
them again.

A full disk (or an I/O error, a file turned read-only) must not stop the daemon: rooms are
still heard and judged. Every write that must not be lost but need not be synchronous —
results, outbox messages (alerts and events), the incident journal, attached streams — goes
through ``Spool.write(kind, op)``. While the disk takes writes, ``op`` runs at once. When it
raises ``StorageUnavailable``, the write waits in a FIFO with everything written after it,
and the supervised loop ``state.spool`` retries the oldest with backoff until the disk takes
it, then writes the rest in order. One FIFO for all writes keeps every order that matters:
the alerts of an incident, and its journal entry before its alert.

The FIFO holds at most ``limit`` writes. A write that arrives when it is full is lost: the
only loss there is, counted by kind (``lost``, ``/metrics``), logged, and reported as an
instance health event once the disk is back (the events themselves go through the spool).
A write that fails for another reason than the storage (a bug: a constraint, a closed
database) is raised to its caller when tried at once, and counted as lost when retried.

Reads never wait here: what is spooled is not yet visible to queries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from streamguard.core.backoff import Backoff
from streamguard.core.supervisor import Loop, Supervisor, shared_or_own
from streamguard.state.db import StateError, StorageUnavailable

__all__ = [
    "DEFAULT_LIMIT",
    "DIRECT",
    "Spool",
    "SpoolReport",
    "SpoolState",
    "Write",
    "Writes",
]

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20_000
"""Writes kept in memory at most. A result row or an alert is a few kilobytes (its transcript
and metadata), so this is tens of megabytes at most: about 20 minutes of 100 rooms at 15-s
segments, each with a result and an event or an alert."""

RETRY_BACKOFF = Backoff(initial=0.5, maximum=5.0, multiplier=2.0, jitter=0.2)
SHUTDOWN_SECONDS = 5.0
"""How long closing the spool keeps trying to write what waits before it gives up."""

Write = Callable[[], Awaitable[object]]
"""One write: an async callable that raises ``StorageUnavailable`` when the disk refuses."""


class Writes(Protocol):
    """Where a component sends its deferrable writes: a ``Spool``, or ``DIRECT``."""

    async def write(self, kind: str, op: Write) -> None:
        """Write now, or keep ``op`` to write later."""


class _Direct:
    """Writes at once and raises what the write raises: ``moderate``, tests, library use."""

    async def write(self, kind: str, op: Write) -> None:
        await op()


DIRECT: Writes = _Direct()
"""``Writes`` without a spool."""


class SpoolState(StrEnum):
    """What the spool tells its reporter."""

    UNWRITABLE = "unwritable"
    """The disk refused a write; writes wait in memory from now on."""
    RESTORED = "restored"
    """Everything that waited is written."""
    LOST = "lost"
    """Writes were lost while the disk refused them (the FIFO was full)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: str
    op: Write


SpoolReport = Callable[[SpoolState, str], Awaitable[None]]
"""Told when the disk stops or starts taking writes again, with a sentence for people."""


class Spool:
    """The bounded FIFO of writes waiting for the disk; ``async with`` runs its retry loop
    (under the shared supervisor), and closing writes what it can within
    ``SHUTDOWN_SECONDS``."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        retry: Backoff = RETRY_BACKOFF,
        supervisor: Supervisor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._retry = retry
        self._shared = supervisor
        self._clock = clock
        self._queue: deque[_Pending] = deque()
        self._lock = asyncio.Lock()  # one write at a time, in order
        self._wake = asyncio.Event()
        self._written = asyncio.Event()  # set while nothing waits
        self._written.set()
        self._report: SpoolReport | None = None
        self._stack = AsyncExitStack()
        self._loop: Loop | None = None
        self.lost: Counter[str] = Counter()
        """Writes lost since start, by kind."""
        self.last_error: str | None = None
        self._since: float | None = None  # clock time the disk refused, while it does
        self._episode_lost = 0
        self._episode_waited = 0

    def report_to(self, report: SpoolReport) -> None:
        """Tell ``report`` when the disk stops or starts taking writes (set once the bus is
        up: what it writes goes through this spool too)."""
        self._report = report

    @property
    def depth(self) -> int:
        """Writes waiting in memory now."""
        return len(self._queue)

    @property
    def degraded(self) -> bool:
        """True from a refused write until everything that waited is written."""
        return self._since is not None

    async def check(self) -> tuple[bool, str]:
        """A readiness check: (False, why) while writes wait for the disk."""
        if self._since is None:
            return True, "writable"
        waited = self._clock() - self._since
        lost = sum(self.lost.values())
        return False, (
            f"the disk refuses writes ({self.last_error}) since {waited:.0f} s; "
            f"{self.depth} write(s) wait in memory (at most {self.limit}), {lost} lost"
        )

    async def wait_written(self) -> None:
        """Return once nothing waits for the disk (bound it with ``asyncio.timeout``)."""
        await self._written.wait()

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            supervisor = await shared_or_own(self._shared, stack)
            self._loop = supervisor.start("state.spool", self._run)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None:
            await self._loop.stop()
        await self._stack.aclose()
        try:
            async with asyncio.timeout(SHUTDOWN_SECONDS):
                while self._queue:
                    if not await self._write_oldest():
                        await asyncio.sleep(self._retry.initial)
        except TimeoutError:
            pass
        if self._queue:
            left = Counter(p.kind for p in self._queue)
            self.lost.update(left)
            self._queue.clear()
            log.error(
                "stopping with the disk still refusing writes (%s): %s lost",
                self.last_error,
                _kinds(left),
            )

    async def write(self, kind: str, op: Write) -> None:
        """Run ``op`` now; if the disk refuses it, or writes already wait, keep it (in
        order) for the retry loop. Raises only what ``op`` raises for another reason."""
        async with self._lock:
            started = False
            if self._queue:
                self._keep(kind, op)
            else:
                try:
                    await op()
                except StorageUnavailable as exc:
                    self._queue.append(_Pending(kind, op))
                    started = self._enter(exc)
        # Reported outside the lock: the report is a write itself.
        if started:
            await self._tell(
                SpoolState.UNWRITABLE,
                f"the state disk refuses writes ({self.last_error}); results and alerts wait "
                f"in memory (up to {self.limit} writes) and are written when it takes them",
            )

    def _enter(self, exc: StorageUnavailable) -> bool:
        self.last_error = str(exc)
        self._wake.set()
        if self._since is not None:
            return False
        self._since = self._clock()
        self._written.clear()
        self._episode_lost = self._episode_waited = 0
        log.error("the disk refuses writes, keeping them in memory: %s", exc)
        return True

    def _keep(self, kind: str, op: Write) -> None:
        if len(self._queue) < self.limit:
            self._queue.append(_Pending(kind, op))
            return
        self.lost[kind] += 1
        self._episode_lost += 1
        if self._episode_lost == 1 or self._episode_lost % 1000 == 0:
            log.error(
                "the disk still refuses writes and %d wait in memory: %d write(s) lost so far "
                "(this one: %s)",
                len(self._queue),
                self._episode_lost,
                kind,
            )

    async def _run(self) -> None:
        """Retry the oldest waiting write with backoff; write the rest once it passes."""
        while True:
            await self._wake.wait()
            failures = 0
            while self._queue:
                if await self._write_oldest():
                    failures = 0
                    continue
                failures += 1
                await asyncio.sleep(self._retry.delay(failures))
            self._wake.clear()
            await self._restored()

    async def _write_oldest(self) -> bool:
        """Try the oldest waiting write; False when the disk still refuses it."""
        async with self._lock:
            pending = self._queue[0]
            try:
                await pending.op()
            except StorageUnavailable as exc:
                self.last_error = str(exc)
                return False
            except Exception as exc:  # not the disk (a bug, a closed db): it will never pass
                # Dropped, not retried: a write that fails as it is would hold up every
                # write behind it for good.
                self.lost[pending.kind] += 1
                self._episode_lost += 1
                log.error(
                    "a waiting %s write failed for good, dropped: %s",
                    pending.kind,
                    exc,
                    exc_info=not isinstance(exc, StateError),
                )
            self._queue.popleft()
            self._episode_waited += 1
            return True

    async def _restored(self) -> None:
        if self._since is None:
            return
        seconds = self._clock() - self._since
        self._since = None
        self._written.set()
        written, lost = self._episode_waited, self._episode_lost
        log.warning(
            "the disk takes writes again: %d write(s) that waited up to %.0f s are written, "
            "%d lost",
            written,
            seconds,
            lost,
        )
        await self._tell(
            SpoolState.RESTORED,
            f"the state disk takes writes again after {seconds:.0f} s: {written} waiting "
            f"write(s) written, {lost} lost",
        )
        if lost:
            await self._tell(
                SpoolState.LOST,
                f"{lost} write(s) were lost while the state disk refused writes (more than "
                f"{self.limit} waited); since start: {_kinds(self.lost)}",
            )

    async def _tell(self, state: SpoolState, detail: str) -> None:
        if self._report is None:
            return
        try:
            await self._report(state, detail)
        except Exception as exc:  # a report must not stop the writes
            log.error("could not report that the disk is %s: %s", state.value, exc)


def _kinds(counts: Counter[str]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())) or "none"
