"""``LiveStream``: one stream moderated by AMS itself (``mode = "live"``, Type LIVE_AUDIO).

AMS pulls the stream's URL, cuts it by the console's slice length and judges each slice; we
never touch the audio. A ``LiveStream`` owns the stream's AMS task:

- it creates it (``Input.Url`` = the stream URL, the stream's BizType, our callback URL and
  Seed); first it cancels tasks an earlier run of this stream left pulling (found by their
  DataId prefix in ``RunningLiveTasks``, one listing shared by the engine's streams), so a
  crash never leaves AMS billing a stream nobody listens to;
- it learns the task's slices from DescribeTaskDetail with ShowAllSegments (every slice)
  and from callbacks; each poll is scheduled for when the next slice should be judged (then
  2 s doubling while it is late, at most ``live_poll_interval``, which alone applies when
  AMS calls back every slice), and a callback that leaves a gap polls at once;
  ``slices.SliceBook`` hands each out once, in time order, as one of our segments with its
  verdict and AMS's copy of the audio as evidence (``async for``);
- a task that ends (FINISH: the stream ended or AMS gave up on it), errors, disappears or
  cannot be created is created again after a backoff (2 s doubling to
  ``live_restart_max``), until the stream is detached: leaving ``async with`` cancels the
  task (CancelTask).

A Create whose outcome is unknown (a timeout, an unreadable answer) is looked up by its
DataId before another is made: the task it may have created is adopted, not duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable
from urllib.parse import urlsplit

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.backoff import Backoff
from streamguard.engines.ams.live_tasks import RunningLiveTasks
from streamguard.engines.ams.pages import TaskPages, iso
from streamguard.engines.ams.settle import ENDED
from streamguard.engines.ams.slices import JudgedSlice, SliceBook
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.errors import AmsError, AmsInvalidResponse, AmsRetryableError
from streamguard.tencentcloud.models import (
    CreateTasksRequest,
    DescribeTasksRequest,
    StorageInfo,
    TaskDetail,
    TaskFilter,
    TaskInput,
)

__all__ = [
    "PULLABLE_SCHEMES",
    "JudgedSlice",
    "LiveEngine",
    "LiveStream",
    "LiveTaskRouter",
    "unpullable",
]

LATE_WAIT = 2.0
"""The first wait after a poll that came when a slice was due and found none."""

LiveTaskRouter = MutableMapping[str, Callable[[TaskDetail], Awaitable[None]]]
"""Task id → the live stream taking its callbacks (``Callbacks.live``)."""

log = logging.getLogger(__name__)


PULLABLE_SCHEMES = ("http", "https", "rtmp", "rtmps")
"""What AMS pulls a live stream over (spec §3.1: RTMP, HTTP, HTTPS; HLS is over HTTP)."""


def unpullable(url: str) -> str | None:
    """Why AMS cannot pull ``url`` as a live stream (a file, another protocol); None if it
    may (whether Tencent Cloud reaches the host is not known here)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in PULLABLE_SCHEMES:
        return None
    shown = f"{scheme}:" if scheme else "a local path"
    return f"AMS live mode pulls streams over {', '.join(PULLABLE_SCHEMES)} only, not {shown}"


async def _ignore(detail: TaskDetail) -> None:
    """A callback of a live task no longer followed (cancelled, or restarted)."""


@runtime_checkable
class LiveEngine(Protocol):
    """An engine whose service pulls streams itself (AMS in ``live`` mode): the seam where a
    stream's source is a task of the service rather than our own ingest."""

    @property
    def live_mode(self) -> bool:
        """Whether streams are to be pulled by the service (else they are cut here)."""
        ...

    def live(
        self, url: str, stream_id: str, attached_at: datetime, biz_type: str | None = None
    ) -> LiveStream:
        """The stream as a source of judged slices (``async with``, then ``async for``)."""
        ...


class LiveStream:
    """``async with LiveStream(...) as live: async for judged in live: ...``.

    ``state`` is ``starting``, ``running`` (AMS is pulling), ``restarting`` (between tasks;
    ``last_error`` says why) or ``stopped``. ``router`` is where callbacks find the task.
    ``detach`` ends the iteration (after the slices already handed out); leaving the
    ``async with`` cancels the task. ``running`` is the listing of running live tasks the
    engine's streams share (their sweep for orphans at start).
    """

    def __init__(
        self,
        config: AmsEngineConfig,
        client: AmsClient,
        *,
        url: str,
        stream_id: str,
        attached_at: datetime,
        biz_type: str | None,
        router: LiveTaskRouter,
        running: RunningLiveTasks | None = None,
        callback_url: str | None = None,
        seed: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._client = client
        self.url = url
        self.stream_id = stream_id
        self.attached_at = attached_at
        self._biz_type = biz_type or config.biz_type
        self._router = router
        self._running = running or RunningLiveTasks(TaskPages(client), clock=clock)
        self._callback_url = callback_url
        self._seed = seed
        self._clock = clock
        self._backoff = Backoff(
            initial=min(2.0, config.live_restart_max), maximum=config.live_restart_max
        )
        self._book = SliceBook(stream_id, attached_at, config.supported_languages, clock)
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._tasks_made = 0
        self._ended: set[str] = set()
        self.task_id: str | None = None
        self._task_started = clock()
        self._late_wait = 0.0
        self.state = "starting"
        self.last_error: str | None = None
        self.calls = 0
        """AMS calls this stream made (Create, DescribeTaskDetail, DescribeTasks, Cancel)."""

    async def __aenter__(self) -> Self:
        self._runner = asyncio.create_task(self._run(), name=f"ams.live[{self.stream_id}]")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.wait([runner])
        self.state = "stopped"
        await self._cancel_current()

    def detach(self) -> None:
        """End the iteration once the slices already judged are taken."""
        self._book.out.put_nowait(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> JudgedSlice:
        judged = await self._book.out.get()
        if judged is None:
            self._book.out.put_nowait(None)  # every later call ends too
            raise StopAsyncIteration
        return judged

    async def _run(self) -> None:
        try:
            await self._cancel_orphans()
        except Exception:  # a sweep that cannot be made must not keep the stream from AMS
            log.exception("AMS: looking for orphaned live tasks of %s failed", self.stream_id)
        failures = 0
        while True:
            heard = self._book.handed_out
            try:
                task_id = await self._start_task()
                ended = await self._follow(task_id)
                # A task that brought slices was a good run; one that ended without any
                # (a stream that is gone) backs off like an error.
                healthy = ended == "FINISH" and self._book.handed_out > heard
                failures = 0 if healthy else failures + 1
            except AmsError as exc:
                self.last_error = f"AMS: {exc}"
                failures += 1
            except Exception as exc:
                # An answer this code cannot handle costs a restart, never the stream.
                log.exception("AMS live task of %s could not be followed", self.stream_id)
                self.last_error = f"{type(exc).__name__}: {exc}"
                failures += 1
            await self._cancel_current()  # a task we stop following must not pull on
            self.state = "restarting"
            delay = self._backoff.delay(max(failures, 1))
            log.info(
                "AMS live task of %s restarts in %.1f s: %s", self.stream_id, delay, self.last_error
            )
            await asyncio.sleep(delay)

    # -- the task ------------------------------------------------------------------------

    def _data_id(self) -> str:
        return f"{self.stream_id}-{self.attached_at:%Y%m%d%H%M%S}-L{self._tasks_made:03d}"

    async def _start_task(self) -> str:
        """Create the stream's task (or adopt the one a Create of unknown outcome made)."""
        self._tasks_made += 1
        data_id = self._data_id()
        request = CreateTasksRequest(
            tasks=[
                TaskInput(data_id=data_id, name=self.stream_id, input=StorageInfo(url=self.url))
            ],
            biz_type=self._biz_type,
            type="LIVE_AUDIO",
            callback_url=self._callback_url,
            seed=self._seed if self._callback_url else None,
        )
        created_since = self._clock() - 300
        try:
            self.calls += 1
            answer = await self._client.create_tasks(request)
        except (AmsRetryableError, AmsInvalidResponse) as exc:
            if isinstance(exc, AmsRetryableError) and exc.unprocessed:
                raise
            task_id = await self._find(data_id, created_since)
            if task_id is None:
                raise
            return self._adopt(task_id)
        results = [r for r in answer.results if r.data_id in (data_id, "")]
        if not results or results[0].code != "OK" or not results[0].task_id:
            said = f"{results[0].code}: {results[0].message}" if results else "no result"
            message = f"live task for {self.stream_id} refused: {said}"
            raise AmsError("CreateRefused", message, answer.request_id)
        return self._adopt(results[0].task_id)

    def _adopt(self, task_id: str) -> str:
        self.task_id = task_id
        self._task_started = self._clock()
        self._router[task_id] = self._take
        self.state = "running"
        log.info("AMS live task %s pulls stream %s", task_id, self.stream_id)
        return task_id

    def _forget_task(self) -> None:
        """Stop following the task; its late callbacks (the final one) are taken, unused."""
        if self.task_id is not None:
            self._router[self.task_id] = _ignore
        self.task_id = None

    async def _find(self, data_id: str, since: float) -> str | None:
        """The task id of a live task created with ``data_id`` since ``since``, if any."""
        request = DescribeTasksRequest(
            limit=20,
            filter=TaskFilter(type="LIVE_AUDIO"),
            start_time=iso(since),
        )
        with contextlib.suppress(AmsError):
            self.calls += 1
            page = await self._client.describe_tasks(request)
            for task in page.data:
                if task.data_id == data_id and task.status not in ENDED:
                    return task.task_id
        return None

    async def _cancel_orphans(self) -> None:
        """Cancel live tasks of this stream that an earlier run left pulling."""
        prefix = f"{self.stream_id}-"
        running = await self._running.listing()
        for task in running:
            if task.data_id.startswith(prefix) and task.task_id:
                await self._cancel(task.task_id, "an earlier run's")

    async def _cancel_current(self) -> None:
        """Cancel the task being followed (none once it ended by itself)."""
        task_id = self.task_id
        self._forget_task()
        if task_id is not None and task_id not in self._ended:
            await self._cancel(task_id, "the stream's")

    async def _cancel(self, task_id: str, whose: str) -> None:
        try:
            self.calls += 1
            await asyncio.wait_for(self._client.cancel_task(task_id), self._config.request_timeout)
            log.info("AMS: cancelled %s live task %s (%s)", whose, task_id, self.stream_id)
        except (AmsError, TimeoutError) as exc:
            log.warning("AMS: CancelTask %s for %s failed: %s", task_id, self.stream_id, exc)

    # -- its slices ----------------------------------------------------------------------

    async def _follow(self, task_id: str) -> str:
        """Poll the task until it ends; its final status. A callback wakes a poll early."""
        wait = self._config.live_poll_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            wait = self._config.live_poll_interval
            before = self._book.handed_out
            try:
                self.calls += 1
                detail = await self._client.describe_task_detail(task_id, show_all_segments=True)
            except AmsError as exc:
                self._book.polled(task_id, [])  # what callbacks brought still goes out
                if exc.code == "ResourceNotFound":
                    self.last_error = f"AMS no longer knows live task {task_id}: {exc}"
                    return "LOST"
                self.last_error = f"AMS: {exc}"
                continue
            self._book.polled(task_id, detail.audio_segments, detail)
            wait = self._next_wait(found=self._book.handed_out > before)
            if detail.status in ENDED:
                why = f": {detail.error_type}: {detail.error_description}"
                self.last_error = f"AMS live task {task_id} ended {detail.status}" + (
                    why if detail.error_type else ""
                )
                self._ended.add(task_id)
                return detail.status

    def _next_wait(self, found: bool) -> float:
        """Seconds to the next poll: until the next slice should be judged (a slice length
        and AMS's processing of it after the last one's end, plus a margin), so that polls
        land when slices do; past that time and still without it (``found`` nothing),
        2 s, doubling at each empty poll; never more than ``live_poll_interval``, which
        alone applies once AMS calls back every slice."""
        interval = self._config.live_poll_interval
        if self._book.every_slice_called_back:
            return interval  # full callbacks bring every slice: polls are a safety net
        if found:
            self._late_wait = 0.0
        due = self._book.next_slice_due(self._config.processing_ratio, self._task_started)
        now = self._clock()
        if due is not None and due > now:
            return min(interval, max(1.0, due - now))
        self._late_wait = min(interval, max(LATE_WAIT, 2 * self._late_wait))
        return self._late_wait

    async def _take(self, detail: TaskDetail) -> None:
        """A callback of the task: its slices, and a poll at once when they leave a gap."""
        task_id = detail.task_id or self.task_id or ""
        if self._book.called_back(task_id, detail) or detail.status in ENDED:
            self._wake.set()
