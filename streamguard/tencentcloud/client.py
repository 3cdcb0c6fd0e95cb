"""``AmsClient``: the five AMS 2020-12-29 actions over one aiohttp session, TC3-signed.

Every call is rate limited client-side, bounded by an explicit ``ClientTimeout``, and retried
only for retryable errors, on a ``Backoff`` schedule bounded by attempts and total time.
Create calls are not idempotent (each accepted task is billed), so they are retried only
when the server certainly did nothing (throttled, signature expired, connection refused);
an unknown outcome is raised for the caller to reconcile.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from streamguard.core.backoff import Backoff
from streamguard.core.errors import AmsError
from streamguard.tencentcloud.errors import AmsNetworkError, AmsRetryableError, error_for
from streamguard.tencentcloud.models import (
    CancelTaskResponse,
    CreateTasksRequest,
    CreateTasksResponse,
    DescribeTasksRequest,
    DescribeTasksResponse,
    SyncTaskRequest,
    SyncTaskResponse,
    TaskDetail,
)
from streamguard.tencentcloud.ratelimit import RateLimiter
from streamguard.tencentcloud.signing import Credentials, authorization_header

__all__ = ["API_VERSION", "SERVICE", "AmsClient", "RetryPolicy"]

API_VERSION = "2020-12-29"
SERVICE = "ams"
_USER_AGENT = "streamguard-ams/0.1"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry a retryable failure of one AMS call.

    ``attempts`` (the first one included) and ``total_seconds`` (from the first attempt to
    the start of the last) bound it; the waits between attempts double from ``initial`` up
    to ``maximum``, each spread by ``±jitter`` of itself.
    """

    attempts: int = 5
    total_seconds: float = 30.0
    initial: float = 0.25
    maximum: float = 5.0
    jitter: float = 0.5
    backoff: Backoff = field(init=False, repr=False, compare=False)
    """The ``Backoff`` these describe (built once, so a bad policy fails where it is made)."""

    def __post_init__(self) -> None:
        schedule = Backoff(
            initial=self.initial,
            maximum=self.maximum,
            multiplier=2.0,
            jitter=self.jitter,
            attempts=self.attempts,
            total_seconds=self.total_seconds,
        )
        object.__setattr__(self, "backoff", schedule)


class AmsClient:
    """Async client for AMS; use as ``async with AmsClient(...) as client``.

    ``sleep`` (backoff), ``clock`` (the X-TC-Timestamp) and ``monotonic`` (retry budget) are
    injectable so tests run without waiting.
    """

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        requests_per_second: float = 20.0,
        timeout: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        region: str = "",
        language: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        url = URL(endpoint)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"AMS endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = url.with_path("/")
        default_port = 443 if url.scheme == "https" else 80
        self.host = url.host if url.port in (None, default_port) else f"{url.host}:{url.port}"
        self._credentials = credentials
        self._timeout = timeout or aiohttp.ClientTimeout(total=15, connect=5, sock_read=12)
        self.retry = retry or RetryPolicy()
        self._region = region
        self._language = language
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self.limiter = RateLimiter(requests_per_second, clock=monotonic)
        self._session: aiohttp.ClientSession | None = None
        self.calls: dict[str, int] = {}
        """HTTP requests sent, by action (every attempt counts)."""
        self.outcomes: dict[tuple[str, str], int] = {}
        """Attempts by (action, result code): "OK", an API error code, or a network error."""

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, headers={"User-Agent": _USER_AGENT}
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- the five actions ------------------------------------------------------------------

    async def create_tasks(self, request: CreateTasksRequest) -> CreateTasksResponse:
        """CreateAudioModerationTask; check each ``results[i].code`` (a call may half succeed)."""
        body = await self.call("CreateAudioModerationTask", request.to_api(), idempotent=False)
        return CreateTasksResponse.model_validate(body)

    async def describe_task_detail(
        self, task_id: str, *, show_all_segments: bool = True
    ) -> TaskDetail:
        """DescribeTaskDetail; every slice's result when ``show_all_segments`` (the default)."""
        body = await self.call(
            "DescribeTaskDetail", {"TaskId": task_id, "ShowAllSegments": show_all_segments}
        )
        return TaskDetail.model_validate(body)

    async def describe_tasks(self, request: DescribeTasksRequest) -> DescribeTasksResponse:
        """DescribeTasks: one page of task statuses."""
        body = await self.call("DescribeTasks", request.to_api())
        return DescribeTasksResponse.model_validate(body)

    async def cancel_task(self, task_id: str) -> CancelTaskResponse:
        """CancelTask; returning at all means AMS accepted the cancel."""
        body = await self.call("CancelTask", {"TaskId": task_id})
        return CancelTaskResponse.model_validate(body)

    async def create_sync_task(self, request: SyncTaskRequest) -> SyncTaskResponse:
        """CreateAudioModerationSyncTask: judge a short clip within the call."""
        body = await self.call("CreateAudioModerationSyncTask", request.to_api(), idempotent=False)
        return SyncTaskResponse.model_validate(body)

    # --- transport -------------------------------------------------------------------------

    async def call(
        self, action: str, params: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """Send one action with retries; returns the ``Response`` object of a success.

        Raises ``AmsError`` (or a subclass) when the API refused, or when retries ran out.
        A non-idempotent call is retried only for errors that prove nothing was done.
        """
        started = self._monotonic()
        body = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        backoff = self.retry.backoff
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self._attempt(action, body)
            except AmsRetryableError as exc:
                delay = backoff.delay(attempts, self._rng)
                safe = idempotent or exc.unprocessed
                # The retry would start after the delay: that is when it must be in budget.
                elapsed = self._monotonic() - started + delay
                if not safe or backoff.gives_up(attempts, elapsed):
                    raise
                log.info(
                    "AMS %s: %s (RequestId %s); retry %d in %.2f s",
                    action,
                    exc.code,
                    exc.request_id,
                    attempts,
                    delay,
                )
                await self._sleep(delay)

    async def _attempt(self, action: str, body: bytes) -> dict[str, Any]:
        """One request, counted by its result code."""
        try:
            answer = await self._send(action, body)
        except AmsError as exc:
            key = (action, exc.code)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            raise
        self.outcomes[(action, "OK")] = self.outcomes.get((action, "OK"), 0) + 1
        return answer

    async def _send(self, action: str, body: bytes) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("AmsClient is not open: use 'async with AmsClient(...)'")
        await self.limiter.acquire()
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "Host": self.host,
            "X-TC-Action": action,
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-RequestClient": _USER_AGENT,
            "X-TC-TraceId": str(uuid.uuid4()),
        }
        if self._region:
            headers["X-TC-Region"] = self._region
        if self._language:
            headers["X-TC-Language"] = self._language
        if self._credentials.token:
            headers["X-TC-Token"] = self._credentials.token
        headers["Authorization"] = authorization_header(
            self._credentials, SERVICE, timestamp, headers, body
        )
        self.calls[action] = self.calls.get(action, 0) + 1
        try:
            # A BytesIO payload keeps large bodies (sync task audio) from blocking the loop.
            payload = io.BytesIO(body)
            async with self._session.post(self.endpoint, data=payload, headers=headers) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            raise AmsNetworkError(
                "ClientNetworkError", f"cannot connect: {exc}", sent=False
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AmsNetworkError(
                "ServerNetworkError", f"{type(exc).__name__}: {exc}", sent=True
            ) from exc
        if status != 200:
            raise AmsNetworkError("ServerNetworkError", f"HTTP {status} from AMS", sent=True)
        try:
            envelope = json.loads(raw)
            answer = envelope["Response"]
            if not isinstance(answer, dict):
                raise TypeError("Response is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise AmsNetworkError(
                "ServerNetworkError",
                f"AMS answered without a JSON Response envelope: {exc}",
                sent=True,
            ) from exc
        error = answer.get("Error")
        if isinstance(error, dict):
            raise error_for(
                str(error.get("Code", "")), str(error.get("Message", "")), answer.get("RequestId")
            )
        return answer
