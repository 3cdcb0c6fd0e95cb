"""The daemon's streams: one supervised runner per attached stream.

A runner owns its ``Source`` and ``StreamPipeline``. A live source reconnects by itself; a
runner restarts the whole stream only when the source gives up or something unexpected
fails, within a restart budget (``RESTARTS`` in ``RESTART_WINDOW`` seconds), and then
reports the stream as failed instead of spinning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streamguard.config.ingest import IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import StreamGuardError
from streamguard.core.logs import stream_logger
from streamguard.core.metrics import Metrics
from streamguard.core.status import StreamState
from streamguard.core.verdict import Outcome
from streamguard.engines.base import Engine
from streamguard.ingest.protocols import resolve_source
from streamguard.ingest.source import Source
from streamguard.streams.pipeline import SegmentResult, StreamPipeline
from streamguard.streams.refusals import (
    InvalidSource,
    ShuttingDown,
    StreamConflict,
    UnknownProfile,
)

__all__ = ["AttachHandler", "ResultHandler", "StateHandler", "StreamRunner", "Streams"]

log = logging.getLogger("streamguard.streams")

RESTARTS = 5
RESTART_WINDOW = 600.0
RESTART_DELAY = 5.0
POLL_SECONDS = 1.0

ResultHandler = Callable[[StreamConfig, SegmentResult], Awaitable[None]]
BizType = Callable[[StreamConfig], str]
StateHandler = Callable[[StreamConfig, StreamState, str | None], Awaitable[None]]
AttachHandler = Callable[[StreamConfig], Awaitable[None]]

_OUTCOME_SECONDS = {
    Outcome.MODERATED: "moderated",
    Outcome.NO_SPEECH: "skipped_silent",
    Outcome.SKIPPED_OVERLOADED: "skipped_overloaded",
    Outcome.FAILED: "failed",
    Outcome.NOT_MODERATED: "failed",
}


class StreamRunner:
    """Runs one stream until it ends, is detached, or exhausts its restart budget."""

    def __init__(
        self,
        config: StreamConfig,
        *,
        ingest: IngestConfig,
        engine: Engine,
        clip_dir: Path,
        on_result: ResultHandler,
        on_state: StateHandler,
        metrics: Metrics,
        biz_type: BizType,
    ) -> None:
        self.config = config
        self._biz_type = biz_type
        self._ingest = ingest
        self._engine = engine
        self._clip_dir = clip_dir
        self._on_result = on_result
        self._on_state = on_state
        self._metrics = metrics
        self._log = stream_logger(log, config.id)
        self._source: Source | None = None
        self._stopping = asyncio.Event()
        self._restarts: list[float] = []
        self.state = StreamState.STARTING
        self.last_error: str | None = None
        self.last_audio_at: datetime | None = None
        self.reconnects = 0
        self.outcomes: Counter[str] = Counter()
        self.suggestions: Counter[str] = Counter()
        self.seconds: dict[str, float] = dict.fromkeys(_OUTCOME_SECONDS.values(), 0.0)
        self._silent_since: datetime | None = None

    def stop(self) -> None:
        """Stop reading; what was heard is still cut, judged and recorded."""
        self._stopping.set()
        if self._source is not None:
            self._source.detach()

    async def run(self) -> None:
        """Run the stream, restarting it within the budget, until it ends or is stopped."""
        while not self._stopping.is_set():
            try:
                ended = await self._run_once()
            except* StreamGuardError as group:
                self.last_error = "; ".join(str(e) for e in group.exceptions)
                self._log.warning("stream failed: %s", self.last_error)
            except* Exception as group:
                # A bug or a broken dependency in one stream must not take the daemon down:
                # it costs a restart from the budget, like a source that gave up.
                self.last_error = "; ".join(f"{type(e).__name__}: {e}" for e in group.exceptions)
                self._log.error("stream crashed: %s", self.last_error, exc_info=group)
            else:
                if ended or self._stopping.is_set():
                    await self._set_state(StreamState.ENDED if ended else StreamState.STOPPED)
                    return
            if not self._may_restart():
                await self._set_state(StreamState.FAILED)
                self._log.error("restart budget spent (%d in %.0f s)", RESTARTS, RESTART_WINDOW)
                return
            await self._set_state(StreamState.RESTARTING)
            try:
                await asyncio.wait_for(self._stopping.wait(), RESTART_DELAY)
            except TimeoutError:
                continue
        await self._set_state(StreamState.STOPPED)

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW]
        if len(self._restarts) >= RESTARTS:
            return False
        self._restarts.append(now)
        return True

    async def _run_once(self) -> bool:
        """One life of the source; True when it ended by itself (a file)."""
        attached_at = datetime.now(UTC)
        source = Source(self.config.url, self._ingest, self.config.id, attached_at=attached_at)
        pipeline = StreamPipeline(
            stream_id=self.config.id,
            attached_at=attached_at,
            segment_seconds=self.config.segment_seconds or self._ingest.segment_seconds,
            encoding=self._ingest.encoding,
            clip_dir=self._clip_dir,
            engine=self._engine,
            on_result=self._result,
            biz_type=lambda: self._biz_type(self.config),
        )
        async with source:
            self._source = source
            if self._stopping.is_set():
                source.detach()
            await self._set_state(StreamState.CONNECTING)
            try:
                await pipeline.run(self._watch(source))
            except asyncio.CancelledError:
                # The shutdown deadline passed: what has no verdict yet is recorded as failed
                # (an AMS task already submitted is polled again by the next start).
                await pipeline.abandon("shutdown deadline passed before a verdict")
                raise
            finally:
                self._source = None
        return not source.live

    async def _watch(self, source: Source) -> AsyncIterator[AudioChunk]:
        """Pass the chunks on, keeping the status (state, last audio, reconnects) current."""
        seen_reconnects = 0
        async for chunk in source:
            stats = source.stats
            if stats.reconnects > seen_reconnects:
                self._metrics.reconnects.inc(stats.reconnects - seen_reconnects)
                self.reconnects += stats.reconnects - seen_reconnects
                seen_reconnects = stats.reconnects
            if self.state not in (StreamState.ONLINE, StreamState.SILENT):
                await self._set_state(StreamState.ONLINE)
            self.last_error = stats.last_error
            self.last_audio_at = chunk.wall_start + timedelta(seconds=chunk.duration)
            self._metrics.audio_seconds.labels("ingested").inc(chunk.duration)
            yield chunk

    async def poll(self) -> None:
        """Notice a source reconnecting between chunks (no chunk arrives to tell us)."""
        source = self._source
        if source is not None and self.state in (StreamState.ONLINE, StreamState.SILENT):
            stats = source.stats
            if stats.state is StreamState.RECONNECTING:
                self.last_error = stats.last_error
                await self._set_state(StreamState.RECONNECTING)

    async def _track_silence(self, result: SegmentResult) -> None:
        segment = result.segment
        if result.verdict.outcome is not Outcome.NO_SPEECH:
            self._silent_since = None
            if self.state is StreamState.SILENT:
                await self._set_state(StreamState.ONLINE)
            return
        if self._silent_since is None:
            self._silent_since = segment.started_at
        silent = (segment.ended_at - self._silent_since).total_seconds()
        if self.state is StreamState.ONLINE and silent >= self._ingest.silent_minutes * 60:
            await self._set_state(StreamState.SILENT)

    async def _result(self, result: SegmentResult) -> None:
        await self._track_silence(result)
        verdict = result.verdict
        self.outcomes[verdict.outcome.value] += 1
        if verdict.outcome is Outcome.MODERATED:
            self.suggestions[verdict.suggestion.value] += 1
        kind = _OUTCOME_SECONDS[verdict.outcome]
        self.seconds[kind] += result.segment.duration
        self._metrics.segments.labels(verdict.outcome.value).inc()
        self._metrics.audio_seconds.labels(kind).inc(result.segment.duration)
        latency = (datetime.now(UTC) - result.segment.ended_at).total_seconds()
        self._metrics.engine_latency.labels(verdict.engine).observe(max(0.0, latency))
        await self._on_result(self.config, result)

    async def _set_state(self, state: StreamState) -> None:
        if state == self.state:
            return
        self.state = state
        self._log.info("stream %s", state, extra={"state": state})
        await self._on_state(self.config, state, self.last_error)

    def status(self) -> dict[str, Any]:
        """The stream's config and how it is doing, for the API."""
        return {
            **self.config.model_dump(),
            "state": self.state,
            "last_audio_at": self.last_audio_at.isoformat() if self.last_audio_at else None,
            "reconnects": self.reconnects,
            "segments": sum(self.outcomes.values()),
            "outcomes": dict(self.outcomes),
            "suggestions": dict(self.suggestions),
            "minutes_moderated": round(self.seconds["moderated"] / 60, 3),
            "minutes_skipped_silent": round(self.seconds["skipped_silent"] / 60, 3),
            "minutes_unjudged": round(
                (self.seconds["skipped_overloaded"] + self.seconds["failed"]) / 60, 3
            ),
            "last_error": self.last_error,
        }


class Streams:
    """The attached streams, each a named task in one task group owned by this object.

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
        biz_type: BizType,
        profiles: Callable[[], Mapping[str, ProfileConfig]],
        on_attach: AttachHandler,
    ) -> None:
        self._biz_type = biz_type
        self._on_attach = on_attach
        self._profiles = profiles
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
        self._runners: dict[str, StreamRunner] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group = asyncio.TaskGroup()

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        self._monitor = self._group.create_task(self._poll_forever(), name="streams.monitor")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
        await self._group.__aexit__(exc_type, exc, tb)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for runner in list(self._runners.values()):
                await runner.poll()

    def stop_all(self) -> None:
        """Ask every stream to stop (their tails are still judged); see ``wait_stopped``."""
        if self._monitor is not None:
            self._monitor.cancel()
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

    def statuses(self) -> list[dict[str, Any]]:
        """Every attached stream's status."""
        return [runner.status() for runner in self._runners.values()]

    def status(self, stream_id: str) -> dict[str, Any] | None:
        """One stream's status, or None when it is not attached."""
        runner = self._runners.get(stream_id)
        return runner.status() if runner else None

    def config_of(self, stream_id: str) -> StreamConfig | None:
        """The config a stream runs with, or None when it is not attached."""
        runner = self._runners.get(stream_id)
        return runner.config if runner else None

    def check(self, stream: StreamConfig, *, from_api: bool = True) -> None:
        """Refuse a stream this daemon cannot run: protocol off the allow-list (or a URL
        that is not one), or a profile that is not defined. Raises ``StreamGuardError``."""
        if self._draining:
            raise ShuttingDown("the daemon is shutting down")
        if stream.profile not in self._profiles():
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
        runner = StreamRunner(
            stream,
            ingest=self._ingest,
            engine=self._engine,
            clip_dir=self._clip_dir,
            on_result=self._on_result,
            on_state=self._on_state,
            metrics=self._metrics,
            biz_type=self._biz_type,
        )
        self._runners[stream.id] = runner
        task = self._group.create_task(runner.run(), name=f"stream[{stream.id}]")
        self._tasks[stream.id] = task
