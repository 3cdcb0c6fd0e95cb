"""``Callbacks``: task results AMS pushes to the clip server, checked and settled.

With callbacks on, every Create names the clip server's callback URL and a Seed; AMS signs
each result it POSTs there with the Seed. The Seed is derived from the clip URL key, so
results of tasks created before a restart still verify after it. A callback only settles a
task sooner: one that never arrives is caught by polling.

The body is the task's detail, bare (as documented) or wrapped as ``{"Response": {...}}``
like an API answer. A live task's callback goes to its ``LiveStream``. A signed callback
that is not a task detail (400), or names a task this engine does not track (200: nothing
to retry), is counted in ``unrecognised`` and logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from streamguard.engines.ams.clips import ClipStore
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.live import LiveTaskRouter
from streamguard.engines.ams.settle import ENDED, Settler
from streamguard.state.ams_tasks import AmsTaskStore, SegmentState
from streamguard.tencentcloud.client import OFFLOAD_BYTES
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.models import TaskDetail, parse
from streamguard.tencentcloud.signing import callback_signature

__all__ = ["Callbacks", "task_detail"]

log = logging.getLogger(__name__)


def task_detail(body: bytes) -> TaskDetail | None:
    """The task detail a callback carries (bare or in a ``Response`` wrapper); None when the
    body is not one."""
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and "TaskId" not in document:
        document = document.get("Response")
    if not isinstance(document, dict):
        return None
    try:
        detail = parse(TaskDetail, document)
    except AmsError:
        return None
    return detail if detail.task_id else None


class Callbacks:
    """Receives AMS callbacks while ``listening_on`` a clip server."""

    def __init__(self, store: AmsTaskStore, settle: Settler, clips: ClipStore) -> None:
        self._store = store
        self._settle = settle
        self._clips = clips
        self.settled = 0
        """Tasks settled by a callback rather than by polling."""
        self.unrecognised = 0
        """Signed callbacks that were not a task detail or named a task not tracked here."""
        self.live: LiveTaskRouter = {}
        """Live tasks (``LiveStream``) by task id: their callbacks go to the stream."""

    @property
    def seed(self) -> str:
        """The callback Seed (the clip store must be open: it is derived from its key)."""
        return hmac.new(self._clips.key, b"ams-callback-seed", hashlib.sha256).hexdigest()[:32]

    @property
    def url(self) -> str:
        """Where AMS is asked to POST results."""
        return self._clips.server.callback_url

    @contextmanager
    def listening_on(self, server: ClipServer) -> Iterator[None]:
        """Take ``server``'s callbacks while inside."""
        server.on_callback = self.handle
        try:
            yield
        finally:
            if server.on_callback == self.handle:
                server.on_callback = None

    async def handle(self, body: bytes, headers: Mapping[str, str]) -> int:
        """A result AMS pushed: checked against the Seed, then settled like a poll answer."""
        expected = callback_signature(self.seed, body)
        given = headers.get("X-Signature", "").lower().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, expected.encode("ascii")):
            return 403
        if len(body) > OFFLOAD_BYTES:
            detail = await asyncio.to_thread(task_detail, body)
        else:
            detail = task_detail(body)
        if detail is None:
            self._unrecognised(f"not a task detail: {body[:200]!r}")
            return 400
        taker = self.live.get(detail.task_id)
        if taker is not None:
            await taker(detail)
            return 200
        row = await self._store.by_task(detail.task_id)
        if row is None:
            # A task of a segment still being submitted is settled by polling once accepted;
            # any other is not ours to settle, and AMS retrying would not change that.
            if await self._store.get(detail.data_id) is None:
                self._unrecognised(f"task {detail.task_id!r} ({detail.status}) is not tracked")
            return 200
        if detail.status not in ENDED or row.state != SegmentState.PENDING:
            return 200  # a slice's progress, or a task already settled
        self.settled += 1
        await self._settle.task_ended(row, detail)
        return 200

    def _unrecognised(self, what: str) -> None:
        self.unrecognised += 1
        log.warning("AMS callback not recognised (%d so far): %s", self.unrecognised, what)
