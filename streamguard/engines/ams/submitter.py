"""``Submitter``: queued segments go to AMS in CreateAudioModerationTask batches.

A segment is queued once its clip is placed and the intent to submit recorded. Due segments
are gathered (up to ``batch_size``, within ``batch_window``) into one Create call per
BizType, with DataId = segment id and Type AUDIO. Each task's answer is recorded: accepted
(first poll when AMS should be done), refused with a retryable code (throttled, server
trouble: a per-task code other than OK created no task, so the segment is queued again after
a backoff, up to ``max_submit_attempts``), or refused for good (failed). A Create whose
outcome is unknown (timeout, server error, an answer that could not be read, a task missing
from it) is reconciled before anything is sent again; so is one that died with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.backoff import Backoff
from streamguard.core.excerpt import Excerpt
from streamguard.core.segment import Segment
from streamguard.engines.ams.callbacks import Callbacks
from streamguard.engines.ams.clips import ClipStore
from streamguard.engines.ams.pages import TaskPages
from streamguard.engines.ams.reconcile import Reconciler
from streamguard.engines.ams.settle import Settler
from streamguard.state.ams_tasks import AmsTaskStore, SegmentState, TrackedSegment
from streamguard.state.db import StorageUnavailable
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.errors import (
    AmsError,
    AmsInvalidResponse,
    AmsRetryableError,
    retryable,
)
from streamguard.tencentcloud.models import (
    CreateTasksRequest,
    CreateTasksResponse,
    StorageInfo,
    TaskInput,
    TaskResult,
)

__all__ = ["Submitter"]

FIRST_RESUBMIT_DELAY = 1.0
STORAGE_WAIT_SECONDS = 1.0
"""While the state storage refuses writes (a full disk), a round waits this long."""
"""Seconds before a segment's first resubmission; doubled per further attempt."""

log = logging.getLogger(__name__)


class Submitter:
    """Sends queued segments to AMS; ``run`` is its loop.

    ``wake`` is set whenever a segment is queued, so that it is sent without waiting for the
    next round. ``callbacks``, when given, has AMS push each result as well.
    """

    def __init__(
        self,
        config: AmsEngineConfig,
        client: AmsClient,
        store: AmsTaskStore,
        clips: ClipStore,
        settle: Settler,
        wake: asyncio.Event,
        *,
        callbacks: Callbacks | None = None,
        clock: Callable[[], float] = time.time,
        tick: float = 0.1,
    ) -> None:
        self._config = config
        self._client = client
        self._store = store
        self._clips = clips
        self._settle = settle
        self._wake = wake
        self._callbacks = callbacks
        self._clock = clock
        self._tick = tick
        self.pages = TaskPages(client)
        """DescribeTasks pages, at the page size AMS accepts (shared with the poller)."""
        self._reconciler = Reconciler(self.pages, store, clock=clock)
        # A throttled or lost Create waits no longer than a slow task's poll would.
        ceiling = config.poll_interval_max
        self._backoff = Backoff(
            initial=min(FIRST_RESUBMIT_DELAY, ceiling), maximum=ceiling, jitter=0.5
        )
        self._rng = random.Random()
        self._in_flight: set[str] = set()

    async def queue(self, segment: Segment, biz_type: str | None, excerpt: Excerpt) -> None:
        """Place the segment's clip and record the intent to submit it."""
        path, owned = await self._clips.place(segment, excerpt)
        await self._store.add(
            segment.info(),
            biz_type or self._config.biz_type,
            str(path),
            owned,
            excerpt,
            self._clock(),
        )
        self._wake.set()

    async def run(self) -> None:
        """Submit due segments whenever woken, and at least every five ticks."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick * 5)
            self._wake.clear()
            try:
                await self._submit_due()
            except (AmsError, OSError) as exc:
                log.warning("AMS submission round failed: %s", exc)
            except StorageUnavailable as exc:  # a full disk: wait for it, do not crash
                log.warning("AMS submission waits for the state storage: %s", exc)
                await asyncio.sleep(STORAGE_WAIT_SECONDS)

    async def _submit_due(self) -> None:
        now = self._clock()
        due = await self._store.in_state(SegmentState.QUEUED, due_by=now)
        if not due:
            return
        oldest = min(row.due_at for row in due)
        if len(due) < self._config.batch_size and now - oldest < self._config.batch_window:
            # Wait for more segments to share the call, but not past the window.
            await asyncio.sleep(max(0.0, oldest + self._config.batch_window - now))
            due = await self._store.in_state(SegmentState.QUEUED, due_by=self._clock())
        by_biz: dict[str | None, list[TrackedSegment]] = {}
        for row in due:
            by_biz.setdefault(row.biz_type, []).append(row)
        size = self._config.batch_size
        for rows in by_biz.values():
            for start in range(0, len(rows), size):
                await self._submit(rows[start : start + size])

    async def _submit(self, rows: list[TrackedSegment]) -> None:
        ids = [row.segment_id for row in rows]
        now = self._clock()
        self._in_flight.update(ids)  # before the await: orphans must not include these
        try:
            await self._store.mark_submitting(ids, now)
            answer = await self._create(rows, now)
            if answer is None:
                return
            by_id = {result.data_id: result for result in answer.results}
            accepted = [
                (row.segment_id, result.task_id, self._first_poll(row))
                for row in rows
                if (result := by_id.get(row.segment_id)) is not None
                and result.code == "OK"
                and result.task_id
            ]
            if accepted:  # one write for the call's accepted tasks
                await self._store.mark_accepted(accepted, self._clock())
            taken = {segment_id for segment_id, _, _ in accepted}
            for row in rows:
                if row.segment_id not in taken:
                    await self._record(row, by_id.get(row.segment_id), now)
        finally:
            self._in_flight.difference_update(ids)

    async def _create(self, rows: list[TrackedSegment], now: float) -> CreateTasksResponse | None:
        """The Create call for ``rows``; None when it failed (the rows are then dealt with)."""
        callbacks = self._callbacks
        request = CreateTasksRequest(
            tasks=[
                TaskInput(data_id=row.segment_id, input=StorageInfo(url=self._clips.url_for(row)))
                for row in rows
            ],
            biz_type=rows[0].biz_type,
            type="AUDIO",
            callback_url=callbacks.url if callbacks else None,
            seed=callbacks.seed if callbacks else None,
        )
        try:
            return await self._client.create_tasks(request)
        except AmsInvalidResponse as exc:
            log.warning("AMS Create answer unreadable (%s); reconciling", exc)
            await self._reconcile(rows, now)
        except AmsRetryableError as exc:
            if exc.unprocessed:
                for row in rows:
                    await self._resubmit(row, f"Create refused: {exc}")
            else:
                # The server may have created the tasks: find out before resubmitting.
                log.info("AMS Create outcome unknown (%s); reconciling", exc)
                await self._reconcile(rows, now)
        except AmsError as exc:
            for row in rows:
                await self._settle.fail(row, f"AMS refused the Create call: {exc}")
        return None

    async def _record(
        self, row: TrackedSegment, result: TaskResult | None, submitted: float
    ) -> None:
        """One task's answer within a Create call."""
        if result is None or result.code == "OK":
            await self._reconcile([row], submitted)  # the answer does not say: ask
        elif retryable(result.code):
            await self._resubmit(row, f"task refused: {result.code}: {result.message}")
        else:
            await self._settle.fail(row, f"AMS refused the task: {result.code}: {result.message}")

    def _first_poll(self, row: TrackedSegment) -> float:
        expected = row.duration * self._config.processing_ratio
        grace = self._config.callback_grace if self._callbacks else 0.0
        return self._clock() + expected + grace

    async def _resubmit(self, row: TrackedSegment, error: str) -> None:
        """Queue the segment again after a backoff, or fail it when out of attempts."""
        current = await self._store.get(row.segment_id)
        attempts = current.submit_attempts if current is not None else row.submit_attempts
        if not await self._clips.here(row):
            # Tracked by an instance that died before AMS had it: its clip is gone with it.
            await self._settle.fail(row, f"its clip is not on this instance; last: {error}")
            return
        if attempts >= self._config.max_submit_attempts:
            await self._settle.fail(row, f"gave up after {attempts} Create attempts; last: {error}")
            return
        due = self._clock() + self._backoff.delay(attempts, self._rng)
        await self._store.requeue(row.segment_id, self._clock(), due, error)
        self._wake.set()

    async def _reconcile(self, rows: list[TrackedSegment], since: float) -> None:
        for row in await self._reconciler.reconcile(rows, since):
            await self._resubmit(row, "Create outcome unknown; AMS has no such task")

    async def reconcile_orphans(self) -> None:
        """Reconcile segments left ``submitting`` with no Create in flight: the call died
        with the process, or reconciling it failed. Logs when AMS cannot be asked yet."""
        orphans = [
            row
            for row in await self._store.in_state(SegmentState.SUBMITTING)
            if row.segment_id not in self._in_flight
        ]
        if not orphans:
            return
        try:
            await self._reconcile(orphans, min(r.submitted_at or r.created_at for r in orphans))
        except AmsError as exc:
            log.info("AMS reconcile failed (will retry): %s", exc)
