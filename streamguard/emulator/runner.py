"""Running tasks: PENDING → RUNNING → FINISH | ERROR (or CANCELLED) (spec §3.2, §4).

An on-demand (AUDIO) task waits in an oldest-first queue (the current SDK docs; older ones
said newest first) for one of a fixed number of workers, which downloads its file and
judges it slice by slice, paced like AMS. A live task
runs at once in a task of its own and reads its stream until the stream ends or the task is
cancelled. Each slice that hits is called back; every task ends with a final callback.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, BinaryIO, Self

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.emulator.callbacks import CallbackSender
from streamguard.emulator.faults import TaskFault
from streamguard.emulator.judging import UNJUDGED, SliceJudge, slice_segment
from streamguard.emulator.media import DecodeFailure, MediaReader
from streamguard.emulator.options import EmulatorStats
from streamguard.emulator.tasks import EmulatedTask, audio_result

__all__ = ["TaskRunner"]


@dataclass
class _Progress:
    """How far a task's judging has come."""

    started: float
    """``time.monotonic()`` when judging began: the pace is measured from it."""
    index: int = 0
    offset: float = 0.0
    """Seconds of audio judged so far."""


class TaskRunner:
    """Runs the tasks it is given; ``async with`` starts the ``workers``, and on leaving stops
    every live read, then cancels and awaits every task it started."""

    def __init__(
        self,
        media: MediaReader,
        judge: SliceJudge,
        callbacks: CallbackSender,
        stats: EmulatorStats,
        *,
        now: Callable[[], datetime],
        workers: int,
        language: str = "",
    ) -> None:
        self._language = language
        self._media = media
        self._judge = judge
        self._callbacks = callbacks
        self._stats = stats
        self._now = now
        self._workers = workers
        self._queue: asyncio.Queue[EmulatedTask] = asyncio.Queue()
        self._live_stops: dict[str, threading.Event] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        for index in range(self._workers):
            self._spawn(self._worker(), f"ams-emulator.worker[{index}]")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for stop in self._live_stops.values():
            stop.set()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def submit(self, task: EmulatedTask) -> None:
        """Start ``task``: a live one at once, an on-demand one when a worker is free."""
        if task.type == "LIVE_AUDIO":
            self._spawn(self._run(task), f"ams-emulator.live[{task.task_id}]")
        else:
            self._queue.put_nowait(task)

    def stop_live(self, task_id: str) -> None:
        """Stop reading the stream of a live task (cancelled); nothing for other tasks."""
        stop = self._live_stops.get(task_id)
        if stop is not None:
            stop.set()

    def release_stuck(self, tasks: Iterable[EmulatedTask]) -> int:
        """Queue again every stuck task among ``tasks`` (as if AMS recovered); how many."""
        stuck = [t for t in tasks if t.fault is TaskFault.STUCK and t.status == "RUNNING"]
        for task in stuck:
            task.fault = None
            task.status = "PENDING"
            self._queue.put_nowait(task)
        return len(stuck)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _worker(self) -> None:
        while True:
            task = await self._queue.get()
            await self._run(task)

    async def _run(self, task: EmulatedTask) -> None:
        if task.status != "PENDING" or task.fault is TaskFault.LOST:
            return  # cancelled while queued, or lost (fault injection)
        task.move("RUNNING", self._now())
        if task.fault is TaskFault.STUCK:
            return  # never leaves RUNNING (fault injection)
        if task.fault is TaskFault.ERROR:
            task.fail("URL_ERROR", "the url is request is 404 (fault injection)", self._now())
        else:
            await self._judge_task(task)
        await self._callbacks.final(task)

    async def _judge_task(self, task: EmulatedTask) -> None:
        progress = _Progress(started=time.monotonic())
        source: str | BinaryIO
        try:
            source = await self._source(task)
        except DecodeFailure as exc:
            task.fail(exc.error_type, str(exc), self._now())
            return
        stop = threading.Event()
        if task.type == "LIVE_AUDIO":
            self._live_stops[task.task_id] = stop
        try:
            await self._media.slices(source, partial(self._judge_slice, task, progress), stop=stop)
        except DecodeFailure as exc:
            task.fail(exc.error_type, str(exc), self._now())
        finally:
            self._live_stops.pop(task.task_id, None)
        if task.status == "RUNNING":
            self._stats.billed_seconds += task.duration
            task.move("FINISH", self._now())

    async def _source(self, task: EmulatedTask) -> str | BinaryIO:
        """A live stream is read from its URL as it plays; a file is downloaded first."""
        if task.type == "LIVE_AUDIO":
            return task.url
        return io.BytesIO(await self._media.download(task.url))

    async def _judge_slice(self, task: EmulatedTask, progress: _Progress, samples: Pcm) -> bool:
        """Judge one slice and record it; False ends the task's reading."""
        if task.status != "RUNNING":
            return False  # cancelled: stop pulling
        live = task.type == "LIVE_AUDIO"
        now = self._now()
        seconds = len(samples) / SAMPLE_RATE
        heard_at = (
            now - timedelta(seconds=seconds)
            if live
            else task.created_at + timedelta(seconds=progress.offset)
        )
        segment = slice_segment(
            task.task_id, task.created_at, progress.index, samples, heard_at, progress.offset
        )
        verdict = await self._judge.judge(segment)
        if verdict.outcome in UNJUDGED:
            task.fail(
                "MODERATION_ERROR",
                f"slice {progress.index} could not be judged: {verdict.reason}",
                now,
            )
            return False
        if not live:
            await self._judge.pace(progress.started, progress.offset + seconds)
        entry: dict[str, Any] = {
            # A live slice is placed by the Unix second it was heard, a file's by its offset.
            "OffsetTime": str(int(heard_at.timestamp()) if live else int(progress.offset)),
            "Result": audio_result(verdict, seconds, self._language),
            "CreatedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        task.segments.append(entry)
        task.duration += seconds
        task.updated_at = self._now()
        await self._callbacks.slice(task, entry)
        progress.index += 1
        progress.offset += seconds
        return True
