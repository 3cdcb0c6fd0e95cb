"""``AmsClient``: the five AMS 2020-12-29 actions over one aiohttp session, TC3-signed.

Every call is rate limited client-side, bounded by an explicit ``ClientTimeout``, and retried
only for retryable errors, on a ``Backoff`` schedule bounded by attempts and total time.
Create calls are not idempotent (each accepted task is billed), so they are retried only
when the server certainly did nothing (throttled, signature expired, connection refused);
an unknown outcome is raised for the caller to reconcile.

Answers are read defensively: a body over ``max_body_bytes`` is refused while it streams in
(a 400 MB answer once took 1.26 GB of memory), bodies over ``OFFLOAD_BYTES`` are decoded
and validated on a worker thread, and an answer no lenient reading accepts is an
``AmsInvalidResponse`` carrying its RequestId. An attempt never outlives the retry budget
by its whole timeout: its timeout is cut to what remains of ``total_seconds``.
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
from typing import Any, Self, TypeVar

import aiohttp
from pydantic import BaseModel
from yarl import URL

from streamguard.core.backoff import Backoff
from streamguard.core.errors import AmsError
from streamguard.tencentcloud.errors import (
    AmsInvalidResponse,
    AmsNetworkError,
    AmsRetryableError,
    error_for,
)
from streamguard.tencentcloud.models import (
    CancelTaskResponse,
    CreateTasksRequest,
    CreateTasksResponse,
    DescribeTasksRequest,
    DescribeTasksResponse,
    SyncTaskRequest,
    SyncTaskResponse,
    TaskDetail,
    parse,
)
from streamguard.tencentcloud.ratelimit import RateLimiter
from streamguard.tencentcloud.signing import Credentials, authorization_header

__all__ = [
    "API_VERSION",
    "MAX_BODY_BYTES",
    "MIN_ATTEMPT_SECONDS",
    "OFFLOAD_BYTES",
    "SERVICE",
    "AmsClient",
    "RetryPolicy",
]

API_VERSION = "2020-12-29"
SERVICE = "ams"
_USER_AGENT = "streamguard-ams/0.1"
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest answer read. A DescribeTaskDetail of a 5-hour task with every slice is a few MB."""
OFFLOAD_BYTES = 256 * 1024
"""Answers larger than this are decoded and validated on a worker thread, off the loop."""
MIN_ATTEMPT_SECONDS = 1.0
"""The shortest timeout an attempt gets when little of the retry budget remains."""
_Model = TypeVar("_Model", bound=BaseModel)

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
        max_body_bytes: int = MAX_BODY_BYTES,
        service: str = SERVICE,
    ) -> None:
        url = URL(endpoint)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"AMS endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = url.with_path("/")
        default_port = 443 if url.scheme == "https" else 80
        self.host = url.host if url.port in (None, default_port) else f"{url.host}:{url.port}"
        self._credentials = credentials
        self.service = service
        """The TC3 service signed for: ``ams``, or ``ims`` when the IMS client sends through
        this transport."""
        self._timeout = timeout or aiohttp.ClientTimeout(total=15, connect=5, sock_read=12)
        self.retry = retry or RetryPolicy()
        self._region = region
        self._language = language
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self.max_body_bytes = max_body_bytes
        self.limiter = RateLimiter(requests_per_second, clock=monotonic)
        self._session: aiohttp.ClientSession | None = None
        self.calls: dict[str, int] = {}
        """HTTP requests sent, by action (every attempt counts)."""
        self.outcomes: dict[tuple[str, str], int] = {}
        """Attempts by (action, result code): "OK", an API error code, or a network error."""
        self.offloaded = 0
        """Answers large enough to be decoded on a worker thread."""

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
        """CreateAudioModerationTask; check each ``results[i].code`` (a call may half succeed).

        ``AmsInvalidResponse`` means the tasks may have been created: reconcile.
        """
        answer = await self._call("CreateAudioModerationTask", request.to_api(), idempotent=False)
        return await self._parse(CreateTasksResponse, answer)

    async def describe_task_detail(
        self, task_id: str, *, show_all_segments: bool = True
    ) -> TaskDetail:
        """DescribeTaskDetail; every slice's result when ``show_all_segments`` (the default)."""
        answer = await self._call(
            "DescribeTaskDetail", {"TaskId": task_id, "ShowAllSegments": show_all_segments}
        )
        return await self._parse(TaskDetail, answer)

    async def describe_tasks(self, request: DescribeTasksRequest) -> DescribeTasksResponse:
        """DescribeTasks: one page of task statuses."""
        answer = await self._call("DescribeTasks", request.to_api())
        return await self._parse(DescribeTasksResponse, answer)

    async def cancel_task(self, task_id: str) -> CancelTaskResponse:
        """CancelTask; returning at all means AMS accepted the cancel."""
        answer = await self._call("CancelTask", {"TaskId": task_id})
        return await self._parse(CancelTaskResponse, answer)

    async def create_sync_task(self, request: SyncTaskRequest) -> SyncTaskResponse:
        """CreateAudioModerationSyncTask: judge a short clip within the call."""
        answer = await self._call(
            "CreateAudioModerationSyncTask", request.to_api(), idempotent=False
        )
        return await self._parse(SyncTaskResponse, answer)

    async def _parse(self, model: type[_Model], answer: _Answer) -> _Model:
        if answer.size > OFFLOAD_BYTES:
            return await asyncio.to_thread(parse, model, answer.body)
        return parse(model, answer.body)

    # --- transport -------------------------------------------------------------------------

    async def call(
        self, action: str, params: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """Send one action with retries; returns the ``Response`` object of a success.

        Raises ``AmsError`` (or a subclass) when the API refused, or when retries ran out.
        A non-idempotent call is retried only for errors that prove nothing was done.
        """
        return (await self._call(action, params, idempotent=idempotent)).body

    async def _call(
        self, action: str, params: dict[str, Any], *, idempotent: bool = True
    ) -> _Answer:
        started = self._monotonic()
        body = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        backoff = self.retry.backoff
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self._attempt(action, body, self._budget(started))
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

    def _budget(self, started: float) -> aiohttp.ClientTimeout:
        """This attempt's timeout: the configured one, cut to what remains of the budget."""
        left = max(MIN_ATTEMPT_SECONDS, self.retry.total_seconds - (self._monotonic() - started))
        timeout = self._timeout

        def cut(value: float | None) -> float:
            return left if value is None else min(value, left)

        return aiohttp.ClientTimeout(
            total=cut(timeout.total),
            connect=timeout.connect,
            sock_read=cut(timeout.sock_read),
            sock_connect=timeout.sock_connect,
        )

    async def _attempt(self, action: str, body: bytes, limits: aiohttp.ClientTimeout) -> _Answer:
        """One request, counted by its result code."""
        try:
            answer = await self._send(action, body, limits)
        except AmsError as exc:
            key = (action, exc.code)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            raise
        self.outcomes[(action, "OK")] = self.outcomes.get((action, "OK"), 0) + 1
        return answer

    async def _send(self, action: str, body: bytes, limits: aiohttp.ClientTimeout) -> _Answer:
        if self._session is None:
            raise RuntimeError("AmsClient is not open: use 'async with AmsClient(...)'")
        await self.limiter.acquire()
        headers = self._headers(action, body)
        self.calls[action] = self.calls.get(action, 0) + 1
        try:
            # A BytesIO payload keeps large bodies (sync task audio) from blocking the loop.
            payload = io.BytesIO(body)
            async with self._session.post(
                self.endpoint, data=payload, headers=headers, timeout=limits
            ) as response:
                raw = await self._read(response)
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
        answer = await self._envelope(raw)
        error = answer.get("Error")
        if isinstance(error, dict):
            raise error_for(
                str(error.get("Code", "")), str(error.get("Message", "")), answer.get("RequestId")
            )
        return _Answer(answer, len(raw))

    def _headers(self, action: str, body: bytes) -> dict[str, str]:
        """The request's headers, signed (a fresh timestamp every attempt)."""
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
            self._credentials, self.service, timestamp, headers, body
        )
        return headers

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, refused as soon as it is known to be over ``max_body_bytes``."""
        limit = self.max_body_bytes
        if response.content_length is not None and response.content_length > limit:
            raise AmsInvalidResponse(
                f"the answer is {response.content_length} bytes, over the {limit}-byte cap"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise AmsInvalidResponse(f"the answer is over the {limit}-byte cap")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _envelope(self, raw: bytes) -> dict[str, Any]:
        """The ``Response`` object of a JSON envelope (decoded off the loop when large)."""
        try:
            if len(raw) > OFFLOAD_BYTES:
                self.offloaded += 1
                envelope = await asyncio.to_thread(json.loads, raw)
            else:
                envelope = json.loads(raw)
            answer = envelope["Response"]
            if not isinstance(answer, dict):
                raise TypeError("Response is not an object")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise AmsNetworkError(
                "ServerNetworkError",
                f"AMS answered without a JSON Response envelope: {exc}",
                sent=True,
            ) from exc
        return answer


@dataclass(frozen=True, slots=True)
class _Answer:
    """A call's ``Response`` object and the size of the body it came in."""

    body: dict[str, Any]
    size: int
