"""``Poller``: accepted tasks are asked about until they end.

A task is first polled when AMS should have finished it (its length times
``processing_ratio``, plus ``callback_grace`` when results are pushed too); while it runs,
polls back off from ``poll_interval`` to ``poll_interval_max``. When several tasks are due,
one DescribeTasks page tells all their statuses: a task that finished with nothing found is
settled from it, and DescribeTaskDetail (ShowAllSegments) is fetched only for tasks that hit
something or ended ERROR (or for every task, with ``fetch_pass_details``). A task still
unfinished ``task_deadline`` after acceptance is cancelled and its segment failed.

Each round first has the submitter reconcile Creates that died with the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.backoff import Backoff
from streamguard.core.verdict import Suggestion
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.reconcile import PAGE_LIMIT, RECONCILE_MARGIN, iso
from streamguard.engines.ams.settle import ENDED, Settler
from streamguard.engines.ams.submitter import Submitter
from streamguard.state.ams_tasks import SegmentState, TaskStore, TrackedSegment
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.models import DescribeTasksRequest, TaskData

__all__ = ["Poller"]

log = logging.getLogger(__name__)


class Poller:
    """Polls accepted tasks and settles those that ended; ``run`` is its loop."""

    def __init__(
        self,
        config: AmsEngineConfig,
        client: AmsClient,
        store: TaskStore,
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
        self._clock = clock
        self._tick = tick
        # Unjittered: tasks accepted together stay due together and share a DescribeTasks page.
        ceiling = config.poll_interval_max
        self._backoff = Backoff(
            initial=min(config.poll_interval, ceiling), maximum=ceiling, multiplier=1.5, jitter=0
        )

    async def run(self) -> None:
        """Poll what is due, every tick."""
        while True:
            try:
                await self._submitter.reconcile_orphans()
                await self._poll_due()
            except (AmsError, OSError) as exc:
                log.warning("AMS polling round failed: %s", exc)
            await asyncio.sleep(self._tick)

    async def _poll_due(self) -> None:
        due = await self._store.in_state(SegmentState.PENDING, due_by=self._clock())
        if not due:
            return
        statuses: dict[str, TaskData] = {}
        if len(due) > 1:
            # One page of statuses instead of one detail call per task.
            since = min(row.accepted_at or row.created_at for row in due) - RECONCILE_MARGIN
            page = await self._client.describe_tasks(
                DescribeTasksRequest(limit=PAGE_LIMIT, start_time=iso(since))
            )
            statuses = {task.task_id: task for task in page.data}
        for row in due:
            try:
                await self._poll(row, statuses.get(row.task_id or ""))
            except AmsError as exc:
                log.info("AMS poll of %s failed: %s", row.task_id, exc)

    async def _poll(self, row: TrackedSegment, summary: TaskData | None) -> None:
        assert row.task_id is not None
        if summary is not None:
            if summary.status in ("PENDING", "RUNNING"):
                await self._still_running(row, summary.status)
                return
            passed = summary.status == "FINISH" and (
                verdicts.suggestion(summary.suggestion) is Suggestion.PASS and not summary.labels
            )
            if passed and not self._config.fetch_pass_details:
                verdict = verdicts.from_summary(row.segment_id, summary)
                await self._settle.finish(row, verdict, "FINISH")
                return
        detail = await self._client.describe_task_detail(row.task_id, show_all_segments=True)
        if detail.status in ENDED:
            await self._settle.task_ended(row, detail)
        else:
            await self._still_running(row, detail.status)

    async def _still_running(self, row: TrackedSegment, status: str) -> None:
        now = self._clock()
        age = now - (row.accepted_at or row.created_at)
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
