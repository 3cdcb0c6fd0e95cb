"""``AmsEngine``: the ``Engine`` that has Tencent Cloud AMS judge segments.

It composes the parts of the AMS path, one module each:

- ``clips``: where each segment's clip lives and the signed URL AMS fetches it at;
- ``submitter``: queued segments sent in CreateAudioModerationTask batches;
- ``reconcile``: a Create whose outcome is unknown, checked with DescribeTasks before
  anything is sent again;
- ``poller``: accepted tasks asked about (DescribeTasks, DescribeTaskDetail) until they end;
- ``callbacks``: results AMS pushes, checked against the Seed;
- ``settle``: results turned into verdicts, for the ``moderate`` call waiting or, after a
  restart, as late verdicts;
- ``sync``: sync mode, one CreateAudioModerationSyncTask per segment instead;
- ``live``: live mode, a stream AMS pulls and cuts itself (``live()``), its slices becoming
  our segments.

Everything is tracked in SQLite (``TaskStore``), or in fleet mode in the shared PostgreSQL
(``PgTaskStore``): after a restart pending tasks are polled again, and nothing AMS already
accepted is billed twice; in fleet mode the tasks of a dead instance's streams are settled
by their new owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.segment import Segment
from streamguard.core.supervisor import Supervisor, shared_or_own
from streamguard.core.verdict import Verdict
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.callbacks import Callbacks
from streamguard.engines.ams.clips import URL_KEY_FILE, ClipStore, excerpt_of
from streamguard.engines.ams.credentials import client_from_config, credentials_from_config
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.live import JudgedSlice, LiveStream
from streamguard.engines.ams.live_tasks import RunningLiveTasks
from streamguard.engines.ams.pages import TaskPages
from streamguard.engines.ams.poller import Poller
from streamguard.engines.ams.settle import LateVerdictHandler, Settler
from streamguard.engines.ams.submitter import Submitter
from streamguard.engines.ams.sync import SyncSubmitter
from streamguard.state.ams_tasks import AmsTaskStore, SegmentState, TaskStore
from streamguard.state.db import Database, StateError
from streamguard.tencentcloud.client import AmsClient

__all__ = [
    "URL_KEY_FILE",
    "AmsEngine",
    "JudgedSlice",
    "LateVerdictHandler",
    "LiveStream",
    "credentials_from_config",
]


class AmsEngine:
    """Judges segments with AMS; ``async with AmsEngine(config, db) as engine``.

    ``client`` and ``clips`` are built from ``config`` unless given (then the caller owns
    them). The submitter and poller loops run under ``supervisor`` (the daemon's; else one
    of its own). ``store`` tracks the tasks (default: ``TaskStore`` on ``db``; fleet mode
    gives the shared one). ``on_verdict`` receives verdicts nobody awaits any more: tasks
    resumed after a restart, or taken over from another instance. ``clock`` is wall time
    (scheduling, stored times); tests make intervals small.
    """

    name = verdicts.ENGINE_NAME
    version = verdicts.ENGINE_VERSION

    def __init__(
        self,
        config: AmsEngineConfig,
        db: Database,
        *,
        state_dir: Path | None = None,
        client: AmsClient | None = None,
        clips: ClipServer | None = None,
        on_verdict: LateVerdictHandler | None = None,
        clock: Callable[[], float] = time.time,
        tick: float = 0.1,
        supervisor: Supervisor | None = None,
        store: AmsTaskStore | None = None,
    ) -> None:
        self.config = config
        self._supervisor = supervisor
        self.segments_in_flight = config.segments_in_flight
        self.store: AmsTaskStore = store if store is not None else TaskStore(db)
        self._client = client
        self._clock = clock
        self._tick = tick
        self._clips = ClipStore(config, state_dir, clips)
        self._wake = asyncio.Event()
        self._settle = Settler(
            self.store,
            self._clips,
            self._wake,
            on_late=on_verdict,
            clock=clock,
            languages=config.supported_languages,
        )
        self._callbacks = (
            Callbacks(self.store, self._settle, self._clips)
            if config.callbacks and config.mode in ("segments", "live")
            else None
        )
        self._submitter: Submitter | None = None
        self._sync: SyncSubmitter | None = None
        self._stack = AsyncExitStack()
        self._live_tasks: RunningLiveTasks | None = None

    @property
    def client(self) -> AmsClient:
        """The AMS client in use (given, or built from the config on entry)."""
        assert self._client is not None, "AmsEngine is not open"
        return self._client

    @property
    def clips(self) -> ClipServer:
        """The clip server in use (given, or built from the config on entry)."""
        return self._clips.server

    @property
    def callbacks_settled(self) -> int:
        """Tasks settled by an AMS callback rather than by polling."""
        return self._callbacks.settled if self._callbacks is not None else 0

    @property
    def callbacks_unrecognised(self) -> int:
        """Signed callbacks that were not a task detail, or named a task not tracked here."""
        return self._callbacks.unrecognised if self._callbacks is not None else 0

    async def __aenter__(self) -> Self:
        try:
            await self._open(self._stack)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _open(self, stack: AsyncExitStack) -> None:
        """Open the parts on ``stack``, which closes them in reverse order."""
        if self._client is None:
            self._client = await stack.enter_async_context(client_from_config(self.config))
        client = self._client
        await stack.enter_async_context(self._clips)
        stack.callback(self._settle.cancel_waiting)
        if self.config.mode == "sync":
            self._sync = SyncSubmitter(
                self.config, client, self.store, self._clips, self._settle, clock=self._clock
            )
            return
        if self._callbacks is not None:
            stack.enter_context(self._callbacks.listening_on(self._clips.server))
        submitter = Submitter(
            self.config,
            client,
            self.store,
            self._clips,
            self._settle,
            self._wake,
            callbacks=self._callbacks,
            clock=self._clock,
            tick=self._tick,
        )
        poller = Poller(
            self.config,
            client,
            self.store,
            self._settle,
            submitter,
            clock=self._clock,
            tick=self._tick,
        )
        supervisor = await shared_or_own(self._supervisor, stack)
        for name, run in (("ams.submitter", submitter.run), ("ams.poller", poller.run)):
            stack.push_async_callback(supervisor.start(name, run).stop)  # they never end
        self._submitter = submitter

    async def aclose(self) -> None:
        """Stop polling and submitting and close owned parts.

        State stays in the database: the next engine on it resumes every unfinished
        segment. ``moderate`` calls still waiting are cancelled.
        """
        await self._stack.aclose()

    @property
    def live_mode(self) -> bool:
        """Whether streams are to be pulled by AMS itself (``live``) rather than cut here."""
        return self.config.mode == "live"

    def live(
        self, url: str, stream_id: str, attached_at: datetime, biz_type: str | None = None
    ) -> LiveStream:
        """A stream AMS pulls and judges itself (Type LIVE_AUDIO): ``async with`` it, then
        ``async for`` its judged slices. Leaving it cancels the AMS task."""
        callbacks = self._callbacks
        return LiveStream(
            self.config,
            self.client,
            url=url,
            stream_id=stream_id,
            attached_at=attached_at,
            biz_type=biz_type,
            router=callbacks.live if callbacks is not None else {},
            running=self._running_live(),
            callback_url=callbacks.url if callbacks is not None else None,
            seed=callbacks.seed if callbacks is not None else None,
            clock=self._clock,
        )

    def _running_live(self) -> RunningLiveTasks:
        """The running live tasks, one listing shared by this engine's live streams."""
        if self._live_tasks is None:
            self._live_tasks = RunningLiveTasks(TaskPages(self.client), clock=self._clock)
        return self._live_tasks

    async def moderate(
        self,
        segment: Segment,
        *,
        biz_type: str | None = None,
        speech: Sequence[tuple[float, float]] | None = None,
    ) -> Verdict:
        """Judge one segment (``biz_type``: the stream's profile; default from config).

        ``speech`` (ordered (start, end) seconds within the segment) limits what is sent, and
        so billed, to those regions, joined into one clip, written here as 16 kHz WAV (the
        whole segment without ``speech``). Verdict times stay relative to the segment. A segment
        already tracked is never submitted again: its stored verdict is returned, or its
        pending task awaited. Never raises for a segment AMS could not judge.
        """
        tracked = await self.store.resume(segment.id)
        if tracked is not None and tracked.state in SegmentState.TERMINAL:
            stored = tracked.stored_verdict()
            assert stored is not None
            return verdicts.from_json(stored)
        with self._settle.expecting(segment.id) as verdict:
            if tracked is None:
                excerpt = excerpt_of(segment, speech)
                try:
                    if self._sync is not None:
                        return await self._sync.moderate(segment, biz_type, excerpt)
                    assert self._submitter is not None, "AmsEngine is not open"
                    await self._submitter.queue(segment, biz_type, excerpt)
                except (StateError, OSError) as exc:
                    # A full disk: without its clip and tracking row the segment cannot be
                    # sent (nor resumed after a restart). Failed, with the reason, not a crash.
                    return verdicts.failed(segment.id, f"AMS task could not be tracked: {exc}")
            return await verdict
