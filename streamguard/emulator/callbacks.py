"""Callbacks: a task's detail POSTed to its CallbackUrl, signed when it has a Seed (spec §4.4).

The final callback is retried 3 times; slice callbacks are not retried at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Any, Self

import aiohttp

from streamguard.core.backoff import Backoff
from streamguard.emulator import shapes
from streamguard.emulator.faults import Shape
from streamguard.emulator.options import EmulatorStats
from streamguard.emulator.tasks import EmulatedTask
from streamguard.tencentcloud.signing import callback_signature

__all__ = ["FINAL_RETRIES", "SLICE_RETRIES", "CallbackSender"]

FINAL_RETRIES = Backoff(initial=0.5, maximum=2.0, multiplier=2.0, jitter=0.0, attempts=4)
"""The final callback: 4 attempts, 0.5, 1 and 2 s apart. No jitter: there is one sender here,
not a crowd of peers to spread out, and a fixed schedule keeps test and bench timings alike."""
SLICE_RETRIES = dataclasses.replace(FINAL_RETRIES, attempts=1)
"""A slice callback: one attempt."""

log = logging.getLogger(__name__)


class CallbackSender:
    """Delivers callbacks; ``async with`` owns the session they go out on.

    ``full`` is the console's full-callback switch: a callback for every slice, not only
    those that hit, and every slice judged so far in the final one's ``AudioSegments``.
    ``shapes`` gives the odd shapes of answer in force (read at every callback).
    """

    def __init__(
        self,
        stats: EmulatorStats,
        *,
        full: bool,
        timeout: float = 5.0,
        shapes: Callable[[], Collection[Shape]] = frozenset,
    ) -> None:
        self.stats = stats
        self._shapes = shapes
        self.full = full
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def final(self, task: EmulatedTask) -> None:
        """Call back with ``task``'s detail once it has ended, retried on failure."""
        await self._send(task, None, FINAL_RETRIES)

    async def slice(self, task: EmulatedTask, segment: dict[str, Any]) -> None:
        """Call back with the slice just judged, when it hit (any slice with ``full``)."""
        if segment["Result"]["HitFlag"] or self.full:
            await self._send(task, segment, SLICE_RETRIES)

    def _body(self, task: EmulatedTask, segment: dict[str, Any] | None) -> bytes:
        """The task's detail; a slice's callback carries that slice alone."""
        detail = task.detail(show_all_segments=self.full)
        if segment is not None:
            detail["AudioSegments"] = [segment]
        body = shapes.callback_body(detail, self._shapes())
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    async def _send(
        self, task: EmulatedTask, segment: dict[str, Any] | None, backoff: Backoff
    ) -> None:
        if not task.callback_url:
            return
        body = self._body(task, segment)
        headers = {"Content-Type": "application/json"}
        if task.seed:
            headers["X-Signature"] = callback_signature(task.seed, body)
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            if await self._post(task, body, headers):
                self.stats.callbacks += 1
                return
            if backoff.gives_up(attempts, time.monotonic() - started):
                return
            await asyncio.sleep(backoff.delay(attempts))

    async def _post(self, task: EmulatedTask, body: bytes, headers: dict[str, str]) -> bool:
        """One attempt: True when the receiver acknowledged it with a 2xx."""
        assert self._session is not None
        try:
            async with self._session.post(task.callback_url, data=body, headers=headers) as answer:
                return 200 <= answer.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("callback for %s failed: %r", task.task_id, exc)
            return False
