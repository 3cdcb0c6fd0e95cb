"""``TaskPages``: DescribeTasks read a page at a time, at a page size the service accepts.

The largest ``Limit`` is not documented; the TaskId doc says 20 tasks per query, so pages
ask for at most ``PAGE_LIMIT``. A page size the service refuses (an ``InvalidParameter*``
code) is halved for the rest of the run and the error raised: the caller falls back (the
poller to DescribeTaskDetail per task) or asks again later (the reconciler).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.models import DescribeTasksRequest, DescribeTasksResponse

__all__ = ["PAGE_LIMIT", "TaskPages", "iso"]

PAGE_LIMIT = 20
"""Tasks per DescribeTasks page at most."""

log = logging.getLogger(__name__)


def iso(moment: float) -> str:
    """A Unix time as DescribeTasks's StartTime."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TaskPages:
    """Reads DescribeTasks pages; ``limit`` is the page size in use."""

    def __init__(self, client: AmsClient) -> None:
        self._client = client
        self.limit = PAGE_LIMIT

    async def page(self, request: DescribeTasksRequest, token: str | None) -> DescribeTasksResponse:
        """The page after ``token`` (the first when None) of ``request``'s tasks."""
        limit = self.limit
        try:
            return await self._client.describe_tasks(
                request.model_copy(update={"limit": limit, "page_token": token})
            )
        except AmsError as exc:
            if exc.code.startswith("InvalidParameter") and limit > 1 and limit == self.limit:
                self.limit = max(1, limit // 2)
                log.warning(
                    "AMS refused DescribeTasks with Limit=%d (%s); using %d from now on",
                    limit,
                    exc,
                    self.limit,
                )
            raise
