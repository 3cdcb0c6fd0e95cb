"""``Settler``: an AMS answer becomes the segment's verdict and reaches whoever waits for it.

A task that ended (learned by poll or callback) settles its segment once (the store says
whether this call settled it: a callback and a poll, or two instances, may both try): FINISH
gives the verdict, ERROR sends the segment to AMS again once and then fails it with the reason,
CANCELLED fails it. Verdict times are mapped from clip time back onto the segment. The
verdict is stored before anyone hears of it, then the store's own clip deleted, then the
verdict handed to the ``moderate`` calls waiting for it; when none waits (a task of an
earlier run, settled after a restart) it is a late verdict, handed to the late-verdict
handler with its segment so that it can still raise an alert. Only then is the store told
(``confirm``): in fleet mode a verdict settled but not handed on (the instance was killed,
or its write interrupted, in between) is handed on again by whoever may settle the row
(``redeliver``), as a late verdict; results and alerts are idempotent, so at worst twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager

from streamguard.core.segment import SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.clips import ClipStore
from streamguard.engines.ams.languages import CHINESE
from streamguard.state.ams_tasks import AmsTaskStore, TrackedSegment
from streamguard.state.db import StateError
from streamguard.state.postgres.database import StaleWrite
from streamguard.tencentcloud.models import TaskDetail

__all__ = ["ENDED", "MAX_DELIVERIES", "LateVerdictHandler", "Settler"]

LateVerdictHandler = Callable[[Verdict, SegmentInfo | None], Awaitable[None]]
"""Takes a verdict nobody awaits any more and its segment (None for rows tracked before
segments were kept)."""

ENDED = frozenset({"FINISH", "ERROR", "CANCELLED"})
"""Task statuses after which AMS does no more for the task."""
MAX_DELIVERIES = 2
"""An ERROR task is delivered again once; the second ERROR fails the segment."""

log = logging.getLogger(__name__)


class Settler:
    """Settles tracked segments and resolves the ``moderate`` calls waiting for them.

    ``wake`` is set when a segment goes back to the queue, so that the submitter sends it
    without waiting for its next round. ``languages`` are those AMS judges (the rest are
    ``unsupported`` in verdicts).
    """

    def __init__(
        self,
        store: AmsTaskStore,
        clips: ClipStore,
        wake: asyncio.Event,
        *,
        on_late: LateVerdictHandler | None = None,
        clock: Callable[[], float] = time.time,
        languages: Collection[str] = CHINESE,
    ) -> None:
        self._store = store
        self._languages = languages
        self._clips = clips
        self._wake = wake
        self._on_late = on_late
        self._clock = clock
        self._waiters: dict[str, list[asyncio.Future[Verdict]]] = {}

    @contextmanager
    def expecting(self, segment_id: str) -> Iterator[asyncio.Future[Verdict]]:
        """A future for the segment's verdict, resolved when it settles while inside.

        Enter before the segment can settle: a verdict that finds no one waiting is late.
        """
        waiter: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(segment_id, []).append(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(segment_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(segment_id, None)

    def cancel_waiting(self) -> None:
        """Cancel every verdict still awaited (the engine is closing; state stays stored)."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._waiters.clear()

    async def task_ended(self, row: TrackedSegment, detail: TaskDetail) -> None:
        """The segment's task ended: verdict, re-delivery, or failure."""
        if detail.status == "FINISH":
            verdict = verdicts.from_detail(row.segment_id, detail, self._languages)
            await self.finish(row, verdict, "FINISH")
        elif detail.status == "ERROR":
            error = (
                f"task {row.task_id} ended ERROR: {detail.error_type}: {detail.error_description}"
            )
            if row.deliveries < MAX_DELIVERIES and await self._clips.here(row):
                log.info("AMS: %s; delivering segment %s again", error, row.segment_id)
                await self._store.requeue(row.segment_id, self._clock(), self._clock(), error)
                self._wake.set()
            else:
                await self.fail(row, f"AMS {error} (after {row.deliveries} deliveries)", "ERROR")
        else:
            await self.fail(row, f"AMS task {row.task_id} was cancelled", "CANCELLED")

    async def finish(self, row: TrackedSegment, verdict: Verdict, status: str | None) -> None:
        """Store the segment's final verdict (``status``: AMS's last word on the task, if
        any), drop its own clip, and hand the verdict on."""
        verdict = verdicts.remapped(verdict, row.excerpt())
        try:
            settled = await self._store.finish(row.segment_id, verdict, self._clock(), status)
        except StaleWrite as exc:
            # Fleet mode: another instance holds the segment's stream now and settles the
            # task; whoever waits here gets a failure (its own write is refused as stale).
            # (A callback that reached another instance through a load balancer, the usual
            # case behind one, or a poll of a stream this instance lost.)
            log.info("AMS: segment %s is left to its stream's holder: %s", row.segment_id, exc)
            self._resolve(row.segment_id, verdicts.failed(row.segment_id, str(exc), row.task_id))
            return
        if not settled:  # by a callback meanwhile, or by another instance: handed on there
            log.info("AMS: segment %s was settled already", row.segment_id)
            self._resolve(row.segment_id, verdict)
            return
        await self._clips.discard(row)
        await self._hand_on(row, verdict)

    async def _hand_on(self, row: TrackedSegment, verdict: Verdict) -> None:
        """To the ``moderate`` calls waiting, else to the late path; then confirmed."""
        if not self._resolve(row.segment_id, verdict) and self._on_late is not None:
            await self._on_late(verdict, row.segment())
        await self._store.confirm(row.segment_id)

    async def redeliver(self) -> None:
        """Hand on again the verdicts settled but never handed on (``unconfirmed``): a
        failure leaves the row to be handed on again after the grace period."""
        for row in await self._store.unconfirmed():
            stored = row.stored_verdict()
            if stored is None:  # settled rows always carry their verdict
                continue
            log.info("AMS: handing on segment %s's verdict again", row.segment_id)
            if await self._clips.here(row):
                await self._clips.discard(row)
            try:
                await self._hand_on(row, verdicts.from_json(stored))
            except StateError as exc:
                log.warning("AMS: segment %s's verdict not handed on: %s", row.segment_id, exc)

    def _resolve(self, segment_id: str, verdict: Verdict) -> bool:
        """Hand the verdict to the ``moderate`` calls waiting for it; False if none waits."""
        waiters = self._waiters.get(segment_id, [])
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(verdict)
        return bool(waiters)

    async def fail(self, row: TrackedSegment, reason: str, status: str | None = None) -> None:
        """Finish the segment as one AMS could not judge, and say why."""
        log.warning("AMS: segment %s failed: %s", row.segment_id, reason)
        await self.finish(row, verdicts.failed(row.segment_id, reason, row.task_id), status)
