"""``Streams``: the attached streams, one ``StreamRunner`` each, attached and detached by the
API and config reloads.

Runners run as named tasks (``stream[ID]``) of the daemon's supervisor; the supervised loop
``streams.monitor`` notices sources that went quiet while reconnecting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from streamguard.config.ingest import IngestConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.metrics import Metrics
from streamguard.core.supervisor import Loop, Supervisor, shared_or_own
from streamguard.engines.base import Engine
from streamguard.ingest.protocols import resolve_source
from streamguard.moderation.profiles import Profiles
from streamguard.streams.refusals import InvalidSource, ShuttingDown, StreamConflict, UnknownProfile
from streamguard.streams.report import StreamReport
from streamguard.streams.runner import ResultHandler, StateHandler, StreamRunner

__all__ = ["AttachHandler", "Streams"]

POLL_SECONDS = 1.0

AttachHandler = Callable[[StreamConfig], Awaitable[None]]


class Streams:
    """The attached streams; use as ``async with Streams(...) as streams``.

    ``on_attach`` is awaited with a stream's config each time it is attached or changed,
    before it runs with it.
    """

    def __init__(
        self,
        *,
        ingest: IngestConfig,
        engine: Engine,
        clip_dir: Path,
        on_result: ResultHandler,
        on_state: StateHandler,
        metrics: Metrics,
        api_allows_files: bool,
        profiles: Profiles,
        on_attach: AttachHandler,
        supervisor: Supervisor | None = None,
    ) -> None:
        self._profiles = profiles
        self._on_attach = on_attach
        self._lock = asyncio.Lock()  # one attach/change/detach at a time
        self._draining = False
        self._ingest = ingest
        self._api_ingest = ingest.model_copy(
            update={"allow_local_files": ingest.allow_local_files and api_allows_files}
        )
        self._engine = engine
        self._clip_dir = clip_dir
        self._on_result = on_result
        self._on_state = on_state
        self._metrics = metrics
        self._shared = supervisor
        self._stack = AsyncExitStack()
        self._supervisor: Supervisor | None = None
        self._monitor: Loop | None = None
        self._runners: dict[str, StreamRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._supervisor = await shared_or_own(self._shared, stack)
            self._monitor = self._supervisor.start("streams.monitor", self._poll_forever)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
        await self.wait_stopped()
        await self._stack.aclose()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for runner in list(self._runners.values()):
                await runner.poll()

    def stop_all(self) -> None:
        """Ask every stream to stop (their tails are still judged); see ``wait_stopped``."""
        if self._monitor is not None:
            self._monitor.task.cancel()
        for runner in self._runners.values():
            runner.stop()

    async def cancel_all(self) -> None:
        """Cancel every runner (after the shutdown deadline) and wait for them to record."""
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def wait_stopped(self) -> None:
        """Wait until every runner's task has finished."""
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    # -- StreamControl, for the API and config reloads ----------------------------------

    def reports(self) -> list[StreamReport]:
        """Every attached stream's report."""
        return [runner.report() for runner in self._runners.values()]

    def report(self, stream_id: str) -> StreamReport | None:
        """One stream's report, or None when it is not attached."""
        runner = self._runners.get(stream_id)
        return runner.report() if runner else None

    def config_of(self, stream_id: str) -> StreamConfig | None:
        """The config a stream runs with, or None when it is not attached."""
        runner = self._runners.get(stream_id)
        return runner.config if runner else None

    def check(self, stream: StreamConfig, *, from_api: bool = True) -> None:
        """Refuse a stream this daemon cannot run: protocol off the allow-list (or a URL
        that is not one), or a profile that is not defined. Raises ``StreamGuardError``."""
        if self._draining:
            raise ShuttingDown("the daemon is shutting down")
        if stream.profile not in self._profiles:
            raise UnknownProfile(f"profile {stream.profile!r} is not defined in profiles")
        try:
            resolve_source(stream.url, self._api_ingest if from_api else self._ingest)
        except ValueError as exc:  # a URL urllib cannot even parse
            raise InvalidSource(f"not a usable URL: {exc}") from exc

    async def attach(self, stream: StreamConfig, *, from_api: bool = True) -> None:
        """Start a stream, after ``check``; ``StreamConflict`` if it runs already."""
        async with self._lock:
            self.check(stream, from_api=from_api)
            task = self._tasks.get(stream.id)
            if task is not None and not task.done():  # an ended or failed stream may return
                raise StreamConflict(f"stream {stream.id!r} is already attached")
            await self._on_attach(stream)
            self._start(stream)

    async def change(self, stream: StreamConfig, *, from_api: bool = True) -> None:
        """Apply a changed stream (attaching it if it is gone): restart it if its source or
        segmenting changed, else swap room, profile and metadata in place."""
        async with self._lock:
            self.check(stream, from_api=from_api)
            await self._on_attach(stream)
            runner = self._runners.get(stream.id)
            if runner is not None:
                old = runner.config
                if (old.url, old.segment_seconds) == (stream.url, stream.segment_seconds):
                    runner.config = stream  # read at each result
                    return
                await self._detach(stream.id)
            self._start(stream)

    async def detach(self, stream_id: str) -> bool:
        """Stop a stream and wait until its last segment is recorded."""
        async with self._lock:
            return await self._detach(stream_id)

    def drain(self) -> None:
        """Refuse new streams and changes from now on (shutdown has begun)."""
        self._draining = True

    async def _detach(self, stream_id: str) -> bool:
        runner = self._runners.get(stream_id)
        if runner is None:
            return False
        runner.stop()
        await asyncio.wait([self._tasks[stream_id]])
        del self._runners[stream_id]
        del self._tasks[stream_id]
        return True

    def _start(self, stream: StreamConfig) -> None:
        assert self._supervisor is not None, "Streams is used outside its async with"
        runner = StreamRunner(
            stream,
            ingest=self._ingest,
            engine=self._engine,
            clip_dir=self._clip_dir,
            on_result=self._on_result,
            on_state=self._on_state,
            metrics=self._metrics,
            biz_type=self._profiles.biz_type,
        )
        self._runners[stream.id] = runner
        self._tasks[stream.id] = self._supervisor.spawn(f"stream[{stream.id}]", runner.run())
