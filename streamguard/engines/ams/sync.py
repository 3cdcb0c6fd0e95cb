"""``SyncSubmitter``: sync mode, one CreateAudioModerationSyncTask per segment.

The clip travels in the call (base64) and the verdict comes back in its answer: no task to
poll, nothing for AMS to fetch. The segment is still tracked, so that it is never sent twice
and a restart finds its verdict.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.excerpt import Excerpt
from streamguard.core.segment import Segment
from streamguard.core.verdict import Verdict
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.clips import ClipStore
from streamguard.engines.ams.settle import Settler
from streamguard.state.ams_tasks import AmsTaskStore
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.models import SyncTaskRequest

__all__ = ["SyncSubmitter"]


class SyncSubmitter:
    """Judges each segment within one sync call."""

    def __init__(
        self,
        config: AmsEngineConfig,
        client: AmsClient,
        store: AmsTaskStore,
        clips: ClipStore,
        settle: Settler,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._client = client
        self._store = store
        self._clips = clips
        self._settle = settle
        self._clock = clock

    async def moderate(self, segment: Segment, biz_type: str | None, excerpt: Excerpt) -> Verdict:
        """Send the segment's excerpt as WAV, settle it with the answer, and return the
        answer's verdict."""
        now = self._clock()
        path, owned = await self._clips.place(segment, excerpt)
        await self._store.add(segment.info(), biz_type, str(path), owned, excerpt, now)
        await self._store.mark_submitting([segment.id], now)
        row = await self._store.get(segment.id)
        assert row is not None
        content = await asyncio.to_thread(path.read_bytes)
        request = SyncTaskRequest(
            biz_type=biz_type or self._config.biz_type or "default",
            data_id=segment.id,
            file_format="wav",
            file_content=base64.b64encode(content).decode("ascii"),
        )
        try:
            answer = await self._client.create_sync_task(request)
        except AmsError as exc:
            verdict = verdicts.failed(segment.id, f"AMS sync task failed: {exc}")
        else:
            verdict = verdicts.from_sync(segment.id, answer, self._config.supported_languages)
        await self._settle.finish(row, verdict, None)
        return verdict
