"""The local engine's worker threads, its backlog, and its recognition batches.

Segments are judged on a small pool of worker threads (``workers``), never on the event
loop; at most ``backlog`` admitted segments wait for one (``full`` says when another must be
skipped rather than queued). After its gate, a segment with speech joins a line for
recognition; whoever gets a worker place takes the oldest waiting segment and the next ones
while their speech fits one whisper window (``window_seconds``), since whisper costs the
same per 30 s window however much speech it holds. Each segment gets its own result back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from streamguard.core.segment import Segment
from streamguard.engines.gate import SpeechRegion

__all__ = ["Job", "Scheduler"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, eq=False)
class Job(Generic[T]):
    """A gated segment waiting for recognition, and where its result will arrive."""

    segment: Segment
    regions: tuple[SpeechRegion, ...]
    speech: float
    """Seconds of speech in ``regions``: its share of a whisper window."""
    result: asyncio.Future[T]


class Scheduler(Generic[T]):
    """Worker places, the backlog and recognition batches; ``hear`` recognises one batch.

    ``hear`` runs on the event loop, holding a worker place, and puts its blocking work on
    the workers with ``offload``; it returns one result per job, in order.
    """

    def __init__(
        self,
        *,
        workers: int,
        backlog: int,
        window_seconds: float,
        hear: Callable[[Sequence[Job[T]]], Awaitable[list[T]]],
        thread_name_prefix: str,
    ) -> None:
        self.backlog_limit = backlog
        self.window_seconds = window_seconds
        self._hear = hear
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=thread_name_prefix)
        self._slots = asyncio.Semaphore(workers)
        self._batch_ended = asyncio.Event()
        """Set (and replaced) whenever a recognition batch ends, done or put back in line."""
        self._closed = False
        self._admitted = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = 0
        self._ready: deque[Job[T]] = deque()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called: no segment is admitted any more."""
        return self._closed

    @property
    def running(self) -> int:
        """Segments whose work is on a worker thread now (a shared pass counts each)."""
        return self._running

    @property
    def backlog_depth(self) -> int:
        """Segments admitted and waiting now (for the gate, or for recognition after it)."""
        return self._admitted - self._running

    @property
    def full(self) -> bool:
        """Whether the backlog is full: a segment arriving now is skipped, not queued."""
        return self.backlog_depth >= self.backlog_limit

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a backlog place while a segment is judged; ``close`` waits for every one."""
        self._admitted += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._admitted -= 1
            if not self._admitted:
                self._idle.set()

    async def close(self) -> None:
        """Admit nothing more, let every admitted segment finish, stop the workers."""
        self._closed = True
        await self._idle.wait()
        await asyncio.to_thread(self._executor.shutdown, True)

    async def offload(self, work: Callable[[], R]) -> R:
        """Run ``work`` on a worker thread, without taking a worker place.

        For callers that hold one already (``hear``), or before segments arrive (start-up).
        """
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def run(self, work: Callable[[], R]) -> R:
        """Run one segment's ``work`` on a worker thread once a worker place is free."""
        async with self._slots, self._busy(1):
            return await self.offload(work)

    async def recognise(self, segment: Segment, regions: tuple[SpeechRegion, ...]) -> T:
        """Queue ``segment``'s speech for recognition, and wait for its own result.

        The caller may recognise a batch itself (its own segment and others waiting), or
        find its segment in a batch another call is recognising and wait for that.
        """
        job: Job[T] = Job(
            segment,
            regions,
            sum(r.duration for r in regions),
            asyncio.get_running_loop().create_future(),
        )
        self._ready.append(job)
        try:
            while not job.result.done():
                if job not in self._ready:
                    # In a batch another call is recognising: wait for that batch to end (it
                    # goes back in line if that call is cancelled).
                    await self._batch_ended.wait()
                    continue
                async with self._slots:
                    if job in self._ready:
                        await self._run_batch(self._take_batch())
            return job.result.result()
        finally:
            if job in self._ready:
                self._ready.remove(job)

    @contextlib.asynccontextmanager
    async def _busy(self, segments: int) -> AsyncIterator[None]:
        """Count ``segments`` as running (not waiting) while their work is on a thread."""
        self._running += segments
        try:
            yield
        finally:
            self._running -= segments

    def _take_batch(self) -> list[Job[T]]:
        """The oldest ready segment, and the next ones while their speech fits one window."""
        batch = [self._ready.popleft()]
        total = batch[0].speech
        while self._ready and total + self._ready[0].speech <= self.window_seconds:
            total += self._ready[0].speech
            batch.append(self._ready.popleft())
        return batch

    async def _run_batch(self, batch: list[Job[T]]) -> None:
        """Recognise a batch and hand each segment its result."""
        try:
            await self._hear_batch(batch)
        finally:
            # Whatever became of the batch, segments waiting on it look again.
            ended, self._batch_ended = self._batch_ended, asyncio.Event()
            ended.set()

    async def _hear_batch(self, batch: list[Job[T]]) -> None:
        try:
            async with self._busy(len(batch)):
                results = await self._hear(batch)
        except asyncio.CancelledError:
            # Whoever ran the batch was cancelled: the other segments in it go back in line.
            self._ready.extendleft(reversed([j for j in batch if not j.result.done()]))
            raise
        except Exception as exc:
            for job in batch:
                job.result.set_exception(exc)
            return
        for job, result in zip(batch, results, strict=True):
            job.result.set_result(result)
