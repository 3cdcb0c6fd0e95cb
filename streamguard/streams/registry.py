"""``Streams``: the attached streams, one ``StreamRunner`` each, attached and detached by the
API and config reloads.

Runners run as named tasks (``stream[ID]``) of the daemon's supervisor; the supervised loop
``streams.monitor`` notices sources that went quiet while reconnecting.

Two origins, one registry. A stream of the config file belongs to the file: the API may read
it but not change or detach it (``ConfiguredInFile``), and a reload applies the file's
changes. A stream attached through the API is kept in ``state.desired`` before it starts (and
forgotten before it stops), and ``restore`` brings the kept ones back at start; no reload
touches them. An id both in the file and kept from the API is the file's: the kept copy is
forgotten, with a warning. A kept stream that can no longer run (its profile is gone, its
protocol no longer allowed, its config no longer valid) is held: reported as failed with the
reason, kept, and tried again by the next ``restore`` (each reload) or replaced by a PATCH.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from pydantic import ValidationError

from streamguard.config.ingest import IngestConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import StreamGuardError
from streamguard.core.metrics import Metrics
from streamguard.core.status import StreamState
from streamguard.core.supervisor import Loop, Supervisor, shared_or_own
from streamguard.engines.base import Engine
from streamguard.engines.image.base import ImageEngine
from streamguard.ingest.protocols import resolve_source
from streamguard.moderation.profiles import Profiles
from streamguard.state.desired import DesiredStream, KeptStreams
from streamguard.streams.refusals import InvalidSource, ShuttingDown, StreamConflict, UnknownProfile
from streamguard.streams.report import StreamReport, StreamTally
from streamguard.streams.runner import FrameHandler, ResultHandler, StateHandler, StreamRunner

__all__ = ["AttachHandler", "ConfiguredInFile", "Streams"]

log = logging.getLogger("streamguard.streams")

POLL_SECONDS = 1.0

AttachHandler = Callable[[StreamConfig], Awaitable[None]]


class ConfiguredInFile(StreamConflict):
    """The API asked to attach, change or detach a stream the config file defines."""

    code = "configured_in_file"


class Streams:
    """The attached streams; use as ``async with Streams(...) as streams``.

    ``on_attach`` is awaited with a stream's config each time it is attached or changed,
    before it runs with it. ``desired`` keeps the streams attached through the API (none are
    kept without it).
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
        desired: KeptStreams | None = None,
        image_engine: ImageEngine | None = None,
        on_frame: FrameHandler | None = None,
    ) -> None:
        self._profiles = profiles
        self._image_engine, self._on_frame = image_engine, on_frame  # frames: both or none
        self._on_attach = on_attach
        self._desired = desired
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
        self._from_file: set[str] = set()
        self._held: dict[str, StreamReport] = {}  # kept streams that cannot run

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._supervisor = await shared_or_own(self._shared, stack)
            self._monitor = self._supervisor.start("streams.monitor", self._poll_forever)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
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
        """Every attached stream's report, held ones (failed, with their reason) included."""
        return [runner.report() for runner in self._runners.values()] + list(self._held.values())

    def report(self, stream_id: str) -> StreamReport | None:
        """One stream's report, or None when it is not attached."""
        runner = self._runners.get(stream_id)
        return runner.report() if runner else self._held.get(stream_id)

    def config_of(self, stream_id: str) -> StreamConfig | None:
        """The config a stream runs with (or is held with), or None when it is not attached."""
        report = self.report(stream_id)
        return report.config if report else None

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
        """Start a stream, after ``check``; ``StreamConflict`` if it runs already. One from
        the API is kept (``state.desired``) before it starts."""
        async with self._lock:
            await self._attach(stream, from_api, keep=True)

    async def _attach(
        self,
        stream: StreamConfig,
        from_api: bool,
        *,
        keep: bool,
        heard_until: datetime | None = None,
    ) -> None:
        self._refuse_file_stream(stream.id, from_api)
        self.check(stream, from_api=from_api)
        task = self._tasks.get(stream.id)
        if task is not None and not task.done():  # an ended or failed stream may return
            raise StreamConflict(f"stream {stream.id!r} is already attached")
        if keep:
            await self._keep(stream, from_api)
        await self._on_attach(stream)
        self._start(stream, heard_until)

    async def change(self, stream: StreamConfig, *, from_api: bool = True) -> None:
        """Apply a changed stream (attaching it if it is gone): restart it if its source or
        segmenting changed, else swap room, profile and metadata in place."""
        async with self._lock:
            self._refuse_file_stream(stream.id, from_api)
            self.check(stream, from_api=from_api)
            await self._keep(stream, from_api)
            await self._apply(stream)

    async def change_leased(self, stream: StreamConfig, *, from_api: bool) -> None:
        """Apply a config kept in fleet mode's shared desired set (by any instance's API)
        to a stream held here: as ``change``, without keeping it again."""
        async with self._lock:
            self.check(stream, from_api=from_api)
            await self._apply(stream)

    async def _apply(self, stream: StreamConfig) -> None:
        await self._on_attach(stream)
        runner = self._runners.get(stream.id)
        if runner is not None:
            old = runner.config
            if (old.url, old.segment_seconds) == (stream.url, stream.segment_seconds):
                runner.config = stream  # read at each result
                return
            await self._detach(stream.id)
        self._start(stream)

    async def detach(self, stream_id: str, *, from_api: bool = True) -> bool:
        """Stop a stream and wait until its last segment is recorded; one from the API is
        forgotten first, so a restart meanwhile does not bring it back."""
        async with self._lock:
            self._refuse_file_stream(stream_id, from_api)
            self._from_file.discard(stream_id)
            forgotten = self._desired is not None and await self._desired.remove(stream_id)
            held = self._held.pop(stream_id, None) is not None
            return await self._detach(stream_id) or held or forgotten

    async def run_leased(
        self, stream: StreamConfig, *, from_api: bool, heard_until: datetime | None = None
    ) -> None:
        """Start a stream whose lease this instance just took (fleet mode): checked like
        any, not kept again (the shared desired set holds it), detachable by the API; its
        first segment carries the gap since ``heard_until`` (the last one recorded). One it
        cannot run is reported failed with why (as on one machine) and the refusal raised."""
        async with self._lock:
            if not from_api:  # refused to the API here as on one machine
                self._from_file.add(stream.id)
            try:
                await self._attach(stream, from_api, keep=False, heard_until=heard_until)
            except StreamGuardError as exc:
                if not isinstance(exc, ShuttingDown | StreamConflict):
                    await self._hold(stream, str(exc), logged=True)  # by the lease loop
                raise

    async def hand_over(self, stream_id: str) -> bool:
        """Stop a stream another instance is to run (fleet mode: lease lost, shed or
        drained) and wait until its tail is recorded; it stays in the desired set."""
        async with self._lock:
            self._from_file.discard(stream_id)
            held = self._held.pop(stream_id, None) is not None
            return await self._detach(stream_id) or held

    def running(self) -> list[str]:
        """The ids of the streams that run here now."""
        return list(self._runners)

    async def restore(self) -> list[str]:
        """Start every stream kept from the API that does not run yet; hold (and report) each
        one that cannot run. Returns the ids started."""
        if self._desired is None:
            return []
        started = []
        for kept in await self._desired.all():
            async with self._lock:
                if await self._restore(kept):
                    started.append(kept.stream_id)
        return started

    async def _restore(self, kept: DesiredStream) -> bool:
        if kept.stream_id in self._runners or kept.stream_id in self._from_file:
            return False
        stream, reason = _stream_of(kept)
        if stream is not None:
            try:
                await self._attach(stream, from_api=True, keep=False)  # kept as it is already
            except StreamGuardError as exc:
                reason = str(exc)
            else:
                return True
        await self._hold(stream or _unchecked(kept), reason)
        return False

    def drain(self) -> None:
        """Refuse new streams and changes from now on (shutdown has begun)."""
        self._draining = True

    def _refuse_file_stream(self, stream_id: str, from_api: bool) -> None:
        if from_api and stream_id in self._from_file:
            raise ConfiguredInFile(
                f"stream {stream_id!r} is defined in the config file: change it there and reload"
            )

    async def _keep(self, stream: StreamConfig, from_api: bool) -> None:
        """Record who owns ``stream`` now: the API's are kept; the file takes over an id."""
        if from_api:
            if self._desired is not None:
                await self._desired.put(stream)
            return
        self._from_file.add(stream.id)
        if self._desired is not None and await self._desired.remove(stream.id):
            log.warning(
                "stream %s is in the config file: its copy attached through the API is "
                "forgotten and the file's runs",
                stream.id,
                extra={"stream_id": stream.id},
            )

    async def _hold(self, config: StreamConfig, reason: str, *, logged: bool = False) -> None:
        """Report a stream that cannot run as failed, with why (``logged``: said already)."""
        if not logged:
            log.error(
                "stream %s attached through the API cannot run: %s",
                config.id,
                reason,
                extra={"stream_id": config.id},
            )
        self._held[config.id] = StreamReport(config, StreamState.FAILED, reason, StreamTally())
        await self._on_state(config, StreamState.FAILED, reason)

    async def _detach(self, stream_id: str) -> bool:
        runner = self._runners.get(stream_id)
        if runner is None:
            return False
        runner.stop()
        await asyncio.wait([self._tasks[stream_id]])
        del self._runners[stream_id]
        del self._tasks[stream_id]
        return True

    def _start(self, stream: StreamConfig, heard_until: datetime | None = None) -> None:
        """Run ``stream``; a held report of it goes in the same step (held until its runner
        exists, so the API never loses sight of it while it is attached)."""
        assert self._supervisor is not None, "Streams is used outside its async with"
        self._held.pop(stream.id, None)
        runner = StreamRunner(
            stream,
            ingest=self._ingest,
            engine=self._engine,
            clip_dir=self._clip_dir,
            on_result=self._on_result,
            on_state=self._on_state,
            metrics=self._metrics,
            biz_type=self._profiles.biz_type,
            heard_until=heard_until,
            image_engine=self._image_engine,
            on_frame=self._on_frame,
            image_biz_type=self._profiles.image_biz_type,
        )
        self._runners[stream.id] = runner
        self._tasks[stream.id] = self._supervisor.spawn(f"stream[{stream.id}]", runner.run())


def _stream_of(kept: DesiredStream) -> tuple[StreamConfig | None, str]:
    """The kept stream as a valid config, or None and why it is not one any more."""
    try:
        stream = StreamConfig.model_validate(kept.config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}" for e in exc.errors()
        )
        return None, f"its kept config is no longer valid: {problems}"
    if stream.id != kept.stream_id:
        return None, f"its kept config names another id ({stream.id!r})"
    return stream, ""


def _unchecked(kept: DesiredStream) -> StreamConfig:
    """What can be shown of a kept config that is no longer valid: its known fields, as kept."""
    fields: dict[str, Any] = {
        name: value for name, value in kept.config.items() if name in StreamConfig.model_fields
    }
    fields.update(id=kept.stream_id, url=str(fields.get("url", "")))
    return StreamConfig.model_construct(**fields)
