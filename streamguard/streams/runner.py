"""``StreamRunner``: one attached stream, from its source to judged segments, supervised.

A runner owns its ``Source`` and ``StreamPipeline``. A live source reconnects by itself; a
runner restarts the whole stream only when the source gives up or something unexpected
fails, within a restart budget (``RESTARTS`` in ``RESTART_WINDOW`` seconds, ``RESTART_BACKOFF``
between them), and then reports the stream as failed instead of spinning.

With an engine in live mode (``LiveEngine``: AMS pulls the stream itself) the runner's
source is the service's task instead: it runs a ``LiveStream`` and records each slice the
service judged as one of the stream's segments (``_run_live``); status, results, policy and
alerts are the runner's as for its own segments.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from streamguard.config.ingest import IngestConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.backoff import Backoff
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import StreamGuardError
from streamguard.core.logs import stream_logger
from streamguard.core.metrics import Metrics
from streamguard.core.status import StreamState
from streamguard.core.verdict import Outcome
from streamguard.engines.ams.live import LiveEngine, LiveStream
from streamguard.engines.base import Engine
from streamguard.engines.image.base import ImageEngine
from streamguard.ingest.source import Source
from streamguard.streams.frames import FrameJudge, FrameResult
from streamguard.streams.pipeline import SegmentResult, StreamPipeline
from streamguard.streams.report import StreamReport, StreamTally, seconds_kind

__all__ = ["BizType", "FrameHandler", "ResultHandler", "StateHandler", "StreamRunner"]

log = logging.getLogger("streamguard.streams")

RESTARTS = 5
RESTART_WINDOW = 600.0
RESTART_BACKOFF = Backoff(initial=5.0, maximum=5.0, jitter=0.2)
"""The pause before a stream's next life: about 5 s, spread so streams do not restart together."""

_POLLED = frozenset(
    {
        StreamState.CONNECTING,
        StreamState.ONLINE,
        StreamState.SILENT,
        StreamState.RECONNECTING,
        StreamState.FAILING,
    }
)
"""The states a source's own state may move on (between chunks): not while restarting."""

ResultHandler = Callable[[StreamConfig, SegmentResult], Awaitable[object]]
FrameHandler = Callable[[StreamConfig, FrameResult], Awaitable[object]]
BizType = Callable[[StreamConfig], str | None]
StateHandler = Callable[[StreamConfig, StreamState, str | None], Awaitable[None]]


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
        restart_backoff: Backoff = RESTART_BACKOFF,
        heard_until: datetime | None = None,
        image_engine: ImageEngine | None = None,
        on_frame: FrameHandler | None = None,
        image_biz_type: BizType = lambda stream: None,
    ) -> None:
        self.config = config
        self._heard_until = heard_until  # the first life's first segment carries the gap
        self._image_biz_type = image_biz_type
        # Frames are sampled only when someone judges them and the config wants them.
        self._frames = (
            (image_engine, on_frame)
            if image_engine is not None and on_frame is not None and ingest.frames.enabled
            else None
        )
        self._biz_type = biz_type
        self._ingest = ingest
        self._engine = engine
        self._clip_dir = clip_dir
        self._on_result = on_result
        self._on_state = on_state
        self._metrics = metrics
        self._restart_backoff = restart_backoff
        self._log = stream_logger(log, config.id)
        self._source: Source | None = None
        self._live: LiveStream | None = None
        self._stopping = asyncio.Event()
        self._restarts: list[float] = []
        self._silent_since: datetime | None = None
        self.state = StreamState.STARTING
        self.last_error: str | None = None
        self.tally = StreamTally()

    def report(self) -> StreamReport:
        """How the stream is doing now."""
        return StreamReport(self.config, self.state, self.last_error, self.tally.copy())

    def stop(self) -> None:
        """Stop reading; what was heard is still cut, judged and recorded."""
        self._stopping.set()
        if self._source is not None:
            self._source.detach()
        if self._live is not None:
            self._live.detach()

    async def run(self) -> None:
        """Run the stream, restarting it within the budget, until it ends or is stopped."""
        while not self._stopping.is_set():
            try:
                ended = await self._run_once()
            except* StreamGuardError as group:
                self.last_error = "; ".join(str(e) for e in _leaves(group))
                self._log.warning("stream failed: %s", self.last_error)
            except* Exception as group:
                # A bug or a broken dependency in one stream must not take the daemon down:
                # it costs a restart from the budget, like a source that gave up.
                self.last_error = "; ".join(f"{type(e).__name__}: {e}" for e in _leaves(group))
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
                delay = self._restart_backoff.delay(len(self._restarts))
                await asyncio.wait_for(self._stopping.wait(), delay)
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
        if isinstance(self._engine, LiveEngine) and self._engine.live_mode:
            return await self._run_live(self._engine, attached_at)
        live = None if self.config.live == "auto" else self.config.live
        source = Source(
            self.config.url,
            self._ingest,
            self.config.id,
            live=live,
            attached_at=attached_at,
            frames=self._ingest.frames if self._frames is not None else None,
        )
        pipeline = StreamPipeline(
            stream_id=self.config.id,
            attached_at=attached_at,
            segment_seconds=self.config.segment_seconds or self._ingest.segment_seconds,
            encoding=self._ingest.encoding,
            clip_dir=self._clip_dir,
            engine=self._engine,
            on_result=self._result,
            biz_type=lambda: self._biz_type(self.config),
            heard_until=self._heard_until,
        )
        self._heard_until = None
        async with source:
            self._source = source
            if self._stopping.is_set():
                source.detach()
            await self._set_state(StreamState.CONNECTING)
            try:
                await self._read(source, pipeline)
            except asyncio.CancelledError:
                # The shutdown deadline passed: what has no verdict yet is recorded as failed
                # (an AMS task already submitted is polled again by the next start).
                await pipeline.abandon("shutdown deadline passed before a verdict")
                raise
            finally:
                self._source = None
        return source.live is False

    async def _run_live(self, engine: LiveEngine, attached_at: datetime) -> bool:
        """The service pulls and cuts the stream (AMS live mode): its judged slices are this
        stream's segments; status, results and alerts go on as for our own. Never ends by
        itself (the service restarts its task)."""
        biz_type = self._biz_type(self.config)
        async with engine.live(self.config.url, self.config.id, attached_at, biz_type) as live:
            self._live = live
            if self._stopping.is_set():
                live.detach()
            await self._set_state(StreamState.CONNECTING)
            try:
                async for judged in live:
                    if self.state not in (StreamState.ONLINE, StreamState.SILENT):
                        await self._set_state(StreamState.ONLINE)
                    self.tally.heard(judged.segment.started_at, judged.segment.duration)
                    self._metrics.audio_seconds.labels("ingested").inc(judged.segment.duration)
                    await self._result(SegmentResult(judged.segment, None, judged.verdict))
            finally:
                self._live = None
        return False

    async def _read(self, source: Source, pipeline: StreamPipeline) -> None:
        """The audio through the pipeline and, with an image engine, the frames beside it."""
        if self._frames is None:
            await pipeline.run(self._watch(source))
            return
        engine, on_frame = self._frames
        dropped = 0

        async def counted(result: FrameResult) -> None:
            nonlocal dropped
            await self._frames_flow(source)
            frames = self._metrics.frames
            frames.labels(result.verdict.outcome.value).inc()
            dropped, more = source.frames_dropped, source.frames_dropped - dropped
            if more:
                frames.labels("dropped").inc(more)
            await on_frame(self.config, result)

        judge = FrameJudge(
            stream_id=self.config.id,
            engine=engine,
            clip_dir=self._clip_dir,
            on_result=counted,
            biz_type=lambda: self._image_biz_type(self.config),
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(judge.run(source.frames()), name=f"stream[{self.config.id}].frames")
            await pipeline.run(self._watch(source))
        if source.frames_dropped > dropped:
            self._metrics.frames.labels("dropped").inc(source.frames_dropped - dropped)

    async def _frames_flow(self, source: Source) -> None:
        """A stream without audio is online by its frames (no chunk comes to say it)."""
        stats = source.stats
        self.tally.audio_track = stats.audio_track
        if stats.audio_track is False and self.state not in (
            StreamState.ONLINE,
            StreamState.SILENT,
        ):
            self.last_error = stats.last_error
            await self._set_state(StreamState.ONLINE)

    async def _watch(self, source: Source) -> AsyncIterator[AudioChunk]:
        """Pass the chunks on, keeping the status (state, last audio, reconnects) current."""
        seen_reconnects = 0
        async for chunk in source:
            stats = source.stats
            if stats.reconnects > seen_reconnects:
                self._metrics.reconnects.inc(stats.reconnects - seen_reconnects)
                self.tally.reconnects += stats.reconnects - seen_reconnects
                seen_reconnects = stats.reconnects
            # Audio flows: what went wrong before is history, also in the ONLINE status.
            self.last_error = stats.last_error
            self.tally.failed_attempts = stats.failed_attempts
            self.tally.audio_track = stats.audio_track
            if self.state not in (StreamState.ONLINE, StreamState.SILENT):
                await self._set_state(StreamState.ONLINE)
            self.tally.heard(chunk.wall_start, chunk.duration)
            self._metrics.audio_seconds.labels("ingested").inc(chunk.duration)
            yield chunk

    async def poll(self) -> None:
        """Notice a source reconnecting or failing to connect between chunks (no chunk
        arrives to tell us): its state, last error and failed attempts."""
        live = self._live
        if live is not None and self.state in _POLLED:
            if live.state == "restarting" and self.state is not StreamState.RECONNECTING:
                self.last_error = live.last_error
                await self._set_state(StreamState.RECONNECTING)
            return
        source = self._source
        if source is None or self.state not in _POLLED:
            return
        stats = source.stats
        if stats.state not in (StreamState.RECONNECTING, StreamState.FAILING):
            return
        if self.state is StreamState.CONNECTING and stats.state is StreamState.RECONNECTING:
            return  # audio was heard, and its chunks are on their way: they say ONLINE
        self.last_error = stats.last_error
        self.tally.failed_attempts = stats.failed_attempts
        await self._set_state(stats.state)

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
        self.tally.judged(verdict, result.segment.duration)
        self._metrics.segments.labels(verdict.outcome.value).inc()
        kind = seconds_kind(verdict.outcome)
        self._metrics.audio_seconds.labels(kind).inc(result.segment.duration)
        latency = (datetime.now(UTC) - result.segment.ended_at).total_seconds()
        self._metrics.engine_latency.labels(verdict.engine).observe(max(0.0, latency))
        await self._on_result(self.config, result)

    async def _set_state(self, state: StreamState) -> None:
        if state == self.state:
            return
        self.state = state
        self._log.info("stream %s", state.value, extra={"state": state.value})
        await self._on_state(self.config, state, self.last_error)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions themselves, out of the task groups they were raised through."""
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves
