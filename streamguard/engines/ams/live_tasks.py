"""``RunningLiveTasks``: the account's running LIVE_AUDIO tasks, listed once for many streams.

Each live stream, as it starts, cancels the tasks an earlier run of it left pulling. With a
hundred streams starting together, a listing each would cost hundreds of DescribeTasks
pages; the engine's streams share one listing instead, read again at most every ``ttl``
seconds (``MAX_PAGES`` pages of 20: AMS's default live concurrency is 100).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from streamguard.engines.ams.pages import TaskPages, iso
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.models import DescribeTasksRequest, TaskData, TaskFilter

__all__ = ["LOOKBACK", "MAX_PAGES", "RunningLiveTasks"]

MAX_PAGES = 6
LOOKBACK = timedelta(days=1)
"""Live tasks run at most 24 h (CN docs); older ones have ended."""

log = logging.getLogger(__name__)


class RunningLiveTasks:
    """``await listing()``: the RUNNING LIVE_AUDIO tasks created in the last day."""

    def __init__(
        self, pages: TaskPages, *, clock: Callable[[], float] = time.time, ttl: float = 30.0
    ) -> None:
        self._pages = pages
        self._clock = clock
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._tasks: list[TaskData] = []
        self._read_at: float | None = None
        self.pages_read = 0

    async def listing(self) -> list[TaskData]:
        """The tasks, read now unless read within ``ttl`` seconds (a failed read lists
        what its pages showed)."""
        async with self._lock:
            now = self._clock()
            if self._read_at is not None and now - self._read_at < self._ttl:
                return self._tasks
            request = DescribeTasksRequest(
                filter=TaskFilter(type="LIVE_AUDIO", task_status="RUNNING"),
                start_time=iso(now - LOOKBACK.total_seconds()),
            )
            tasks: list[TaskData] = []
            token: str | None = None
            try:
                for _ in range(MAX_PAGES):
                    self.pages_read += 1
                    page = await self._pages.page(request, token)
                    tasks += page.data
                    token = page.page_token or None
                    if token is None:
                        break
            except AmsError as exc:
                log.info("AMS: listing running live tasks failed: %s", exc)
            self._tasks, self._read_at = tasks, now
            return tasks
