"""``Callbacks``: task results AMS pushes to the clip server, checked and settled.

With callbacks on, every Create names the clip server's callback URL and a Seed; AMS signs
each result it POSTs there with the Seed. The Seed is derived from the clip URL key, so
results of tasks created before a restart still verify after it. A callback only settles a
task sooner: one that never arrives is caught by polling.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pydantic import ValidationError

from streamguard.engines.ams.clips import ClipStore
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.settle import ENDED, Settler
from streamguard.state.ams_tasks import SegmentState, TaskStore
from streamguard.tencentcloud.models import TaskDetail
from streamguard.tencentcloud.signing import callback_signature

__all__ = ["Callbacks"]


class Callbacks:
    """Receives AMS callbacks while ``listening_on`` a clip server."""

    def __init__(self, store: TaskStore, settle: Settler, clips: ClipStore) -> None:
        self._store = store
        self._settle = settle
        self._clips = clips
        self.settled = 0
        """Tasks settled by a callback rather than by polling."""

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
        given = headers.get("X-Signature", "").encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, expected.encode("ascii")):
            return 403
        try:
            detail = TaskDetail.model_validate_json(body)
        except ValidationError:
            return 400
        if detail.status not in ENDED:
            return 200  # a slice's progress; the final callback carries the result
        row = await self._store.by_task(detail.task_id)
        if row is None or row.state != SegmentState.PENDING:
            return 200  # not (yet) recorded as accepted: polling will settle it
        self.settled += 1
        await self._settle.task_ended(row, detail)
        return 200
