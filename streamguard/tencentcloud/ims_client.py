"""``ImsClient``: IMS 2020-12-29's two actions, sent through the AMS client's transport.

Signing, the envelope, the body cap, timeouts and the retry of throttled calls are the
``AmsClient``'s, built for the ``ims`` service; this adds what differs. IMS has two rate
limits (IMS spec §4.1): ``ImageModeration`` 100 requests a second, the async task 20; the
transport's limiter holds every call to the first, and a second limiter holds async calls
to the second. IMS's own retryable codes (``ims_errors.retry_ims``: model or queue trouble,
a lost answer, a failed download once) get more attempts within the same ``RetryPolicy``.

An ``ImageModeration`` call changes nothing but the bill, so a lost answer is simply asked
again. An async task's callback is matched by DataId only (IMS returns no TaskId), so a
repeat after a lost answer at worst sends a second callback for that DataId, which the
receiver drops.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import aiohttp

from streamguard.core.errors import AmsError
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.ims_errors import retry_ims
from streamguard.tencentcloud.ims_models import (
    AsyncTaskRequest,
    AsyncTaskResponse,
    ImageModerationRequest,
    ImageModerationResponse,
    parse,
)
from streamguard.tencentcloud.ratelimit import RateLimiter
from streamguard.tencentcloud.signing import Credentials

__all__ = [
    "ASYNC_PER_SECOND",
    "DEFAULT_REGION",
    "IMS_ENDPOINT",
    "SERVICE",
    "SYNC_PER_SECOND",
    "ImsClient",
]

SERVICE = "ims"
IMS_ENDPOINT = "https://ims.tencentcloudapi.com"
DEFAULT_REGION = "ap-guangzhou"
"""IMS requires a Region (spec §1); the SDK samples use this one."""
SYNC_PER_SECOND = 100.0
ASYNC_PER_SECOND = 20.0

log = logging.getLogger(__name__)


class ImsClient:
    """Async IMS client; use as ``async with ImsClient(...) as client``.

    ``sleep``, ``clock`` and ``monotonic`` are injectable (as for ``AmsClient``) so tests
    run without waiting.
    """

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        sync_per_second: float = SYNC_PER_SECOND,
        async_per_second: float = ASYNC_PER_SECOND,
        timeout: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        region: str = DEFAULT_REGION,
        language: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.transport = AmsClient(
            endpoint,
            credentials,
            service=SERVICE,
            requests_per_second=sync_per_second,
            # A URL image may take IMS 6 s to download before it judges (spec §6.5).
            timeout=timeout or aiohttp.ClientTimeout(total=20, connect=5, sock_read=15),
            retry=retry,
            region=region,
            language=language,
            sleep=sleep,
            clock=clock,
            monotonic=monotonic,
            rng=rng,
        )
        self.async_limiter = RateLimiter(async_per_second, clock=monotonic, sleep=sleep)
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng or random.Random()

    @property
    def calls(self) -> dict[str, int]:
        """HTTP requests sent, by action (every attempt counts)."""
        return self.transport.calls

    async def __aenter__(self) -> Self:
        await self.transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.transport.aclose()

    async def image_moderation(self, request: ImageModerationRequest) -> ImageModerationResponse:
        """ImageModeration: the image's judgement within the call."""
        answer = await self._call("ImageModeration", request.to_api())
        return parse(ImageModerationResponse, answer)

    async def create_async_task(self, request: AsyncTaskRequest) -> AsyncTaskResponse:
        """CreateImageModerationAsyncTask: accepted now, judged later, posted to the
        request's CallbackUrl (read it with ``ims_models.callback_result``)."""
        await self.async_limiter.acquire()
        answer = await self._call("CreateImageModerationAsyncTask", request.to_api())
        return parse(AsyncTaskResponse, answer)

    async def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One action, attempted again for IMS's retryable errors within the retry budget."""
        started = self._monotonic()
        backoff = self.transport.retry.backoff
        attempts = 0
        while True:
            attempts += 1
            try:
                # idempotent=False: the transport retries only what surely did nothing.
                return await self.transport.call(action, params, idempotent=False)
            except AmsError as exc:
                delay = backoff.delay(attempts, self._rng)
                elapsed = self._monotonic() - started + delay
                if not retry_ims(exc, attempts) or backoff.gives_up(attempts, elapsed):
                    raise
                log.info(
                    "IMS %s: %s (RequestId %s); retry %d in %.2f s",
                    action,
                    exc.code,
                    exc.request_id,
                    attempts,
                    delay,
                )
                await self._sleep(delay)
