"""``Reconciler``: whether AMS created the tasks of a Create whose outcome is unknown.

A Create that timed out, met a server error, or died with the process may have created its
tasks, and each accepted task is billed; so nothing is sent again before DescribeTasks has
been asked which tasks exist for those segments (DataId = segment id). Tasks found are
recorded as accepted; the segments AMS has no task for are handed back to be sent again.
While DescribeTasks cannot be read, the segments stay ``submitting`` and are asked about
again later, never resubmitted blindly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streamguard.engines.ams.pages import TaskPages, iso
from streamguard.state.ams_tasks import AmsTaskStore, TrackedSegment
from streamguard.tencentcloud.models import DescribeTasksRequest, TaskData, TaskFilter

__all__ = ["RECONCILE_MARGIN", "Reconciler"]

RECONCILE_MARGIN = 120.0
"""Seconds of clock skew allowed when asking AMS which tasks were created since a time."""
MAX_RECONCILE_PAGES = 100
"""DescribeTasks pages read per reconcile at most, so one lookup stays bounded."""

log = logging.getLogger(__name__)


class Reconciler:
    """Finds the tasks AMS created for segments, by DescribeTasks."""

    def __init__(
        self, pages: TaskPages, store: AmsTaskStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._pages = pages
        self._store = store
        self._clock = clock

    async def reconcile(self, rows: list[TrackedSegment], since: float) -> list[TrackedSegment]:
        """Record the tasks AMS created for ``rows`` (Created from ``since``) as accepted;
        the rows it has no task for are returned, to be sent again.

        Raises ``AmsError`` when DescribeTasks cannot be read.
        """
        found = await self._find_tasks(
            {row.segment_id: row.task_id for row in rows}, since - RECONCILE_MARGIN
        )
        missing = []
        for row in rows:
            task = found.get(row.segment_id)
            if task is None:
                missing.append(row)
                continue
            log.info("AMS: segment %s was accepted as %s", row.segment_id, task.task_id)
            # Its result may be ready already: poll at once.
            await self._store.mark_accepted(
                [(row.segment_id, task.task_id, self._clock())], self._clock()
            )
        return missing

    async def _find_tasks(self, wanted: dict[str, str | None], since: float) -> dict[str, TaskData]:
        """Newest task per wanted DataId created since ``since`` (excluding a known old one:
        the task of an earlier delivery)."""
        found: dict[str, TaskData] = {}
        token: str | None = None
        request = DescribeTasksRequest(filter=TaskFilter(type="AUDIO"), start_time=iso(since))
        for _ in range(MAX_RECONCILE_PAGES):
            page = await self._pages.page(request, token)
            for task in page.data:
                if (
                    task.data_id in wanted
                    and task.data_id not in found
                    and task.task_id != wanted[task.data_id]
                ):
                    found[task.data_id] = task
            token = page.page_token or None
            if token is None or len(found) == len(wanted):
                break
        return found
