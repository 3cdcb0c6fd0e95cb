"""The two IMS actions (IMS spec §3, §7): ``ImageModeration`` judges in the call;
``CreateImageModerationAsyncTask`` answers ``{DataId}`` at once, judges in the background
and POSTs an ImageModeration-shaped body (unsigned: IMS has no Seed) to the CallbackUrl.

Each action has its own rate per SecretId (100 and 20 a second by default); queued
``ImsFaults.fail_next`` codes answer calls before any work. An async task whose FileUrl
cannot be downloaded gets no callback (the service documents none for it); it is counted in
``failed_tasks``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import aiohttp

from streamguard.emulator.front import Action
from streamguard.emulator.ims_answers import moderation_answer
from streamguard.emulator.ims_fetch import fetch_image
from streamguard.emulator.ims_images import ImageLimits, read_image, shown
from streamguard.emulator.ims_options import ImsFaults, ImsOptions
from streamguard.emulator.ims_validation import ImsParams, check_ims
from streamguard.emulator.validation import ApiError
from streamguard.tencentcloud.ratelimit import RateLimiter

__all__ = ["ASYNC_ACTION", "ASYNC_LIMITS", "SYNC_ACTION", "SYNC_LIMITS", "ImsActions"]

SYNC_ACTION = "ImageModeration"
ASYNC_ACTION = "CreateImageModerationAsyncTask"
SYNC_LIMITS = ImageLimits(min_side=50)
ASYNC_LIMITS = ImageLimits(min_side=20, max_frames_cap=5)
_CALLBACK_GAP = 0.5

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]
"""Starts background work under a name; its owner awaits it."""


class ImsActions:
    """The IMS action handlers; ``options`` and ``faults`` are read at each call (they may be
    replaced while the emulator runs)."""

    def __init__(
        self,
        options: Callable[[], ImsOptions],
        faults: Callable[[], ImsFaults],
        session: Callable[[], aiohttp.ClientSession],
        spawn: Spawn,
        monotonic: Callable[[], float],
    ) -> None:
        self._options = options
        self._faults = faults
        self._session = session
        self._spawn = spawn
        self._monotonic = monotonic
        self._limiters: dict[tuple[str, str], RateLimiter] = {}
        self.images_judged = 0
        self.callbacks_sent = 0
        self.failed_tasks = 0

    def table(self) -> Mapping[str, Action]:
        """Action name → handler."""
        return {SYNC_ACTION: self.image_moderation, ASYNC_ACTION: self.create_async_task}

    def _admit(self, action: str, secret_id: str) -> None:
        """RequestLimitExceeded over the action's rate; then any injected fault."""
        options = self._options()
        rate = options.sync_per_second if action == SYNC_ACTION else options.async_per_second
        limiter = self._limiters.get((secret_id, action))
        if limiter is None or limiter.rate != rate:
            limiter = RateLimiter(rate, clock=self._monotonic)
            self._limiters[(secret_id, action)] = limiter
        if not limiter.try_acquire():
            raise ApiError(
                "RequestLimitExceeded",
                f"Your request rate exceeds the limit of {rate:g} requests per second for "
                f"{action}. Please reduce the frequency of calls.",
            )
        code = self._faults().take()
        if code is not None:
            raise ApiError(code, f"{code} (fault injection).")

    async def image_moderation(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """ImageModeration: the image judged within the call."""
        self._admit(SYNC_ACTION, secret_id)
        request = check_ims(params, asynchronous=False)
        image = await self._image(request, self._options().sync_download)
        return await self._judge(request, image, SYNC_LIMITS)

    async def create_async_task(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """CreateImageModerationAsyncTask: accepted now, called back when judged."""
        self._admit(ASYNC_ACTION, secret_id)
        request = check_ims(params, asynchronous=True)
        if request.content is not None:  # the bytes are here: refuse a bad image at once
            await asyncio.to_thread(read_image, request.content, ASYNC_LIMITS, request.interval, 1)
        self._spawn(self._run_task(request), f"ims.task[{request.data_id or '-'}]")
        return {"DataId": request.data_id}

    async def _image(self, request: ImsParams, timeouts: tuple[float, float]) -> bytes:
        if request.content is not None:
            return request.content
        options = self._options()
        return await fetch_image(
            self._session(), request.file_url, timeouts, options.max_download_bytes
        )

    async def _judge(self, request: ImsParams, image: bytes, limits: ImageLimits) -> dict[str, Any]:
        pictures = await asyncio.to_thread(
            read_image, image, limits, request.interval, request.max_frames
        )
        self.images_judged += 1
        return moderation_answer(
            shown(pictures),
            data_id=request.data_id,
            biz_type=request.biz_type,
            image=image,
            arrays=self._faults().arrays,
        )

    async def _run_task(self, request: ImsParams) -> None:
        """Judge an accepted task and call back with the answer."""
        options = self._options()
        if options.callback_delay > 0:
            await asyncio.sleep(options.callback_delay)
        try:
            image = await self._image(request, options.async_download)
            answer = await self._judge(request, image, ASYNC_LIMITS)
        except ApiError as exc:
            self.failed_tasks += 1
            log.info("IMS async task %s not judged: %s", request.data_id, exc.code)
            return
        faults = self._faults()
        body: dict[str, Any] = {**answer, "RequestId": str(uuid.uuid4())}
        if faults.wrapped_callbacks:
            body = {"Response": body}
        for _ in range(2 if faults.duplicate_callbacks else 1):
            await self._deliver(request.callback_url, json.dumps(body).encode("utf-8"))

    async def _deliver(self, url: str, body: bytes) -> None:
        """POST the body until the receiver answers 2xx, ``callback_attempts`` tries."""
        headers = {"Content-Type": "application/json"}
        for attempt in range(self._options().callback_attempts):
            if attempt:
                await asyncio.sleep(_CALLBACK_GAP)
            try:
                async with self._session().post(url, data=body, headers=headers) as answer:
                    if 200 <= answer.status < 300:
                        self.callbacks_sent += 1
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("IMS callback to %s failed: %r", url, exc)
