"""Running tasks: PENDING → RUNNING → FINISH | ERROR (or CANCELLED) (spec §3.2, §4).

An on-demand (AUDIO) task waits in an oldest-first queue (the current SDK docs; older ones
said newest first) for one of a fixed number of workers, which downloads its file and
judges it slice by slice, paced like AMS. A live task runs at once in a task of its own and
pulls its stream with our own ingest (``live``) until the stream ends or the task is
cancelled. Each slice that hits is called back; every task ends with a final callback.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Self

from streamguard.config.ingest import IngestConfig
from streamguard.core.chunk import Pcm
from streamguard.core.segment import Segment
from streamguard.emulator.callbacks import CallbackSender
from streamguard.emulator.faults import TaskFault
from streamguard.emulator.judging import UNJUDGED, SliceJudge, slice_segment
from streamguard.emulator.live import LivePull, pull_settings
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
        live_settings: IngestConfig | None = None,
        slice_seconds: int = 30,
    ) -> None:
        self._language = language
        self._live_settings = live_settings or pull_settings(timeout=10.0, reconnects=16)
        self._slice_seconds = slice_seconds
        self._media = media
        self._judge = judge
        self._callbacks = callbacks
        self._stats = stats
        self._now = now
        self._workers = workers
        self._queue: asyncio.Queue[EmulatedTask] = asyncio.Queue()
        self._live_stops: dict[str, Callable[[], None]] = {}
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
        for stop in list(self._live_stops.values()):
            stop()
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
            stop()

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
        if task.type == "LIVE_AUDIO":
            await self._pull_live(task)
        else:
            await self._judge_file(task)
        if task.status == "RUNNING":
            if task.type != "LIVE_AUDIO":  # a live task is billed as it is pulled
                self._stats.billed_seconds += task.duration
            task.move("FINISH", self._now())

    async def _judge_file(self, task: EmulatedTask) -> None:
        """A file is downloaded first, then judged slice by slice at AMS's pace."""
        progress = _Progress(started=time.monotonic())
        try:
            source = io.BytesIO(await self._media.download(task.url))
            await self._media.slices(source, partial(self._judge_slice, task, progress))
        except DecodeFailure as exc:
            task.fail(exc.error_type, str(exc), self._now())

    async def _pull_live(self, task: EmulatedTask) -> None:
        """A stream is pulled as it plays (our own ingest) and judged slice by slice."""
        pull = LivePull(
            task.url, task.task_id[:40], task.created_at, self._live_settings, self._slice_seconds
        )
        self._live_stops[task.task_id] = pull.stop
        progress = _Progress(started=time.monotonic())
        try:
            await pull.run(partial(self._judge_live_slice, task, progress))
        except DecodeFailure as exc:
            task.fail(exc.error_type, str(exc), self._now())
        finally:
            self._live_stops.pop(task.task_id, None)

    async def _judge_slice(self, task: EmulatedTask, progress: _Progress, samples: Pcm) -> bool:
        """Judge one slice of a file, placed by its offset in the file."""
        heard_at = task.created_at + timedelta(seconds=progress.offset)
        segment = slice_segment(
            task.task_id, task.created_at, progress.index, samples, heard_at, progress.offset
        )
        return await self._record(task, progress, segment, str(int(progress.offset)))

    async def _judge_live_slice(
        self, task: EmulatedTask, progress: _Progress, segment: Segment
    ) -> bool:
        """Judge one slice of a stream, placed by the Unix second its audio was heard."""
        offset_time = str(int(segment.started_at.timestamp()))
        return await self._record(task, progress, segment, offset_time)

    async def _record(
        self, task: EmulatedTask, progress: _Progress, segment: Segment, offset_time: str
    ) -> bool:
        """Judge a slice and record it; False ends the task's reading."""
        received = time.monotonic()
        if task.status != "RUNNING":
            return False  # cancelled: stop pulling
        now = self._now()
        seconds = segment.duration
        verdict = await self._judge.judge(segment)
        if verdict.outcome in UNJUDGED:
            task.fail(
                "MODERATION_ERROR",
                f"slice {progress.index} could not be judged: {verdict.reason}",
                now,
            )
            return False
        if task.type == "LIVE_AUDIO":  # each slice takes its processing time as it comes
            await self._judge.pace(received, seconds)
        else:
            await self._judge.pace(progress.started, progress.offset + seconds)
        entry: dict[str, Any] = {
            "OffsetTime": offset_time,
            "Result": audio_result(verdict, seconds, self._language),
            "CreatedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        task.segments.append(entry)
        task.duration += seconds
        if task.type == "LIVE_AUDIO":
            self._stats.billed_seconds += seconds
        task.updated_at = self._now()
        await self._callbacks.slice(task, entry)
        progress.index += 1
        progress.offset += seconds
        return True
