"""``Poller``: accepted tasks are asked about until they end.

A task is first polled when AMS should have finished it (its length times
``processing_ratio``, plus ``callback_grace`` when results are pushed too); while it runs,
polls back off from ``poll_interval`` to ``poll_interval_max``. When several tasks are due,
DescribeTasks pages (``TaskPages``: at most 20 tasks a page, following PageToken) tell their
statuses: a task whose summary says exactly Pass is settled from it, and DescribeTaskDetail
(ShowAllSegments) is fetched for every other ended task (or for every task, with
``fetch_pass_details``), and for tasks the pages did not show or could not be read. A task
still unfinished ``task_deadline`` after acceptance is cancelled and its segment failed.

A poll that fails (``ResourceNotFound`` for an expired task, an answer that cannot be read,
AMS away) backs off for that task alone, doubling from ``poll_interval_max``, and the task
fails with the reason at its deadline: one bad task neither stops the loop nor spins it.

Each round first has the submitter reconcile Creates that died with the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.backoff import Backoff
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.pages import iso
from streamguard.engines.ams.reconcile import RECONCILE_MARGIN
from streamguard.engines.ams.settle import ENDED, Settler
from streamguard.engines.ams.submitter import STORAGE_WAIT_SECONDS, Submitter
from streamguard.state.ams_tasks import AmsTaskStore, SegmentState, TrackedSegment
from streamguard.state.db import StorageUnavailable
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.models import DescribeTasksRequest, TaskData

__all__ = ["MAX_ERROR_BACKOFF", "MAX_STATUS_PAGES", "Poller"]

MAX_STATUS_PAGES = 5
"""DescribeTasks pages read per round at most; tasks not seen in them are asked one by one."""
MAX_ERROR_BACKOFF = 60.0
"""The longest wait between polls of a task whose polls fail."""

log = logging.getLogger(__name__)


class Poller:
    """Polls accepted tasks and settles those that ended; ``run`` is its loop."""

    def __init__(
        self,
        config: AmsEngineConfig,
        client: AmsClient,
        store: AmsTaskStore,
        settle: Settler,
        submitter: Submitter,
        *,
        clock: Callable[[], float] = time.time,
        tick: float = 0.1,
    ) -> None:
        self._config = config
        self._client = client
        self._store = store
        self._settle = settle
        self._submitter = submitter
        self._pages = submitter.pages
        self._clock = clock
        self._tick = tick
        # Unjittered: tasks accepted together stay due together and share a DescribeTasks page.
        ceiling = config.poll_interval_max
        self._backoff = Backoff(
            initial=min(config.poll_interval, ceiling), maximum=ceiling, multiplier=1.5, jitter=0
        )
        self._error_backoff = Backoff(
            initial=ceiling, maximum=max(ceiling, MAX_ERROR_BACKOFF), multiplier=2.0, jitter=0
        )

    async def run(self) -> None:
        """Poll what is due, every tick."""
        while True:
            try:
                await self._store.refresh()
                await self._settle.redeliver()
                await self._submitter.reconcile_orphans()
                await self._poll_due()
            except (AmsError, OSError) as exc:
                log.warning("AMS polling round failed: %s", exc)
            except StorageUnavailable as exc:  # a full disk: wait for it, do not crash
                log.warning("AMS polling waits for the state storage: %s", exc)
                await asyncio.sleep(STORAGE_WAIT_SECONDS)
            await asyncio.sleep(self._tick)

    async def _poll_due(self) -> None:
        due = await self._store.in_state(SegmentState.PENDING, due_by=self._clock())
        if not due:
            return
        statuses = await self._statuses(due) if len(due) > 1 else {}
        for row in due:
            try:
                await self._poll(row, statuses.get(row.task_id or ""))
            except AmsError as exc:
                await self._poll_failed(row, str(exc))
            except StorageUnavailable:
                raise  # not the task's fault: the round waits for the storage
            except Exception as exc:
                # An answer this code cannot handle fails its own task (at the deadline),
                # instead of stopping the loop or, restarted, stopping it again and again.
                log.exception("AMS poll of %s could not be handled", row.task_id)
                await self._poll_failed(row, f"{type(exc).__name__}: {exc}")

    async def _statuses(self, due: list[TrackedSegment]) -> dict[str, TaskData]:
        """The DescribeTasks summaries of the due tasks that the first pages show."""
        wanted = {row.task_id for row in due if row.task_id}
        since = min(row.accepted_at or row.created_at for row in due) - RECONCILE_MARGIN
        request = DescribeTasksRequest(start_time=iso(since))
        found: dict[str, TaskData] = {}
        token: str | None = None
        try:
            for _ in range(MAX_STATUS_PAGES):
                page = await self._pages.page(request, token)
                found.update((task.task_id, task) for task in page.data if task.task_id in wanted)
                token = page.page_token or None
                if token is None or len(found) == len(wanted):
                    break
        except AmsError as exc:
            log.info("AMS DescribeTasks failed (%s); asking for each task's detail", exc)
        return found

    async def _poll(self, row: TrackedSegment, summary: TaskData | None) -> None:
        assert row.task_id is not None
        if summary is not None:
            if summary.status in ("PENDING", "RUNNING"):
                await self._still_running(row, summary.status)
                return
            if verdicts.summary_passes(summary) and not self._config.fetch_pass_details:
                verdict = verdicts.from_summary(row.segment_id, summary)
                await self._settle.finish(row, verdict, "FINISH")
                return
        detail = await self._client.describe_task_detail(row.task_id, show_all_segments=True)
        if detail.status in ENDED:
            await self._settle.task_ended(row, detail)
        else:
            await self._still_running(row, detail.status)

    def _age(self, row: TrackedSegment, now: float) -> float:
        return now - (row.accepted_at or row.created_at)

    async def _poll_failed(self, row: TrackedSegment, error: str) -> None:
        """Back off this task's polls; past its deadline, fail it with the reason."""
        now = self._clock()
        age = self._age(row, now)
        deadline = self._config.task_deadline
        if age >= deadline:
            reason = (
                f"AMS task {row.task_id} could not be polled {age:.0f} s after acceptance "
                f"(deadline {deadline:g} s): {error}"
            )
            await self._settle.fail(row, reason)
            return
        log.info("AMS poll of %s failed: %s", row.task_id, error)
        # The last poll lands on the deadline, so that the task fails then, not later.
        due = min(now + self._error_backoff.delay(row.polls + 1), now + deadline - age)
        await self._store.mark_polled(row.segment_id, None, now, due, error)

    async def _still_running(self, row: TrackedSegment, status: str) -> None:
        now = self._clock()
        age = self._age(row, now)
        if age > self._config.task_deadline:
            reason = (
                f"AMS task {row.task_id} still {status} {age:.0f} s after acceptance "
                f"(deadline {self._config.task_deadline:g} s); cancelled"
            )
            try:
                await self._client.cancel_task(row.task_id or "")
            except AmsError as exc:
                reason += f" (CancelTask failed: {exc.code})"
            await self._settle.fail(row, reason, "CANCELLED")
            return
        interval = self._backoff.delay(row.polls)
        await self._store.mark_polled(row.segment_id, status, now, now + interval)
