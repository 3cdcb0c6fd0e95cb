"""The HTTP front of an emulated Tencent Cloud API: ``POST /`` in, an envelope out.

Every TC3 API is reached the same way, so the front knows nothing of what its actions do:
it checks the method, the X-TC-Action, the signature (for its service), the X-TC-Version
and the caller's request rate, injects request faults, parses the JSON body and hands it to
the action. The answer, or the error an action raised, travels in the
``{"Response": {..., "RequestId"}}`` envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from streamguard.emulator.auth import AuthFailure, verify
from streamguard.emulator.faults import Faults, RequestFault
from streamguard.emulator.options import EmulatorStats
from streamguard.emulator.validation import ApiError
from streamguard.tencentcloud.ratelimit import RateLimiter

__all__ = ["Action", "ApiFront"]

Action = Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]]
"""An action's handler: the request's JSON object and the caller's SecretId → the answer's
fields (without RequestId); it raises ``ApiError`` to answer with an error."""


class _HttpFault(Exception):
    """Answer with a bare HTTP error instead of an envelope (a failing proxy)."""


class ApiFront:
    """Serves ``actions`` of ``service`` at ``version``: ``handle`` is the aiohttp handler.

    ``keys``/``tokens`` are the credentials accepted (SecretId → SecretKey / STS token);
    each SecretId may make ``requests_per_second`` calls of each action (``action_rates``
    names other rates for some actions), each action its own bucket. ``faults`` gives the
    faults in force (they may be replaced at any time). ``clock`` is the wall clock
    signatures are checked against; ``monotonic`` paces the rate limit. ``close`` releases
    answers held back.
    """

    def __init__(
        self,
        service: str,
        version: str,
        actions: Mapping[str, Action],
        stats: EmulatorStats,
        *,
        keys: Mapping[str, str],
        tokens: Mapping[str, str],
        requests_per_second: float,
        faults: Callable[[], Faults],
        action_rates: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.version = version
        self.actions = actions
        self.stats = stats
        self._keys = keys
        self._tokens = tokens
        self._requests_per_second = requests_per_second
        self._action_rates = dict(action_rates or {})
        self._faults = faults
        self._clock = clock
        self._monotonic = monotonic
        self._limiters: dict[tuple[str, str], RateLimiter] = {}
        self._closing = asyncio.Event()

    def open(self) -> None:
        """Start holding back answers that a fault hangs (the server is starting)."""
        self._closing = asyncio.Event()

    def close(self) -> None:
        """Release the answers held back, so the server can shut down."""
        self._closing.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request."""
        request_id = str(uuid.uuid4())
        faults = self._faults()
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        try:
            answer = await self._dispatch(request)
        except (ApiError, AuthFailure) as exc:
            answer = {"Error": {"Code": exc.code, "Message": exc.message}}
        except _HttpFault as exc:
            return web.Response(status=503, text=str(exc), content_type="text/html")
        envelope = {"Response": {**answer, "RequestId": request_id}}
        # Exactly "application/json", no charset: the official SDKs parse errors only then.
        body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
        return web.Response(body=body, content_type="application/json")

    async def _dispatch(self, request: web.Request) -> dict[str, Any]:
        if request.method != "POST":
            raise ApiError(
                "UnsupportedProtocol", "The emulator accepts POST / with a JSON body only."
            )
        body = await request.read()
        action, handler, secret_id = self._admit(request, body)
        self.stats.calls[action] += 1
        self._limit(secret_id, action)
        fault = self._faults().for_request()
        _raise_for(fault)
        answer = await handler(_params(request, body), secret_id)
        self.stats.handled[action] += 1
        if fault is RequestFault.HANG:
            # The action took effect; only its answer is late (the client's outcome is unknown).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._faults().hang_seconds)
        return answer

    def _admit(self, request: web.Request, body: bytes) -> tuple[str, Action, str]:
        """The action named, its handler and the caller's SecretId, once all are valid."""
        action = request.headers.get("X-TC-Action", "")
        if not action:
            raise ApiError(
                "MissingParameter", "The request is missing a required header `X-TC-Action`."
            )
        secret_id = verify(
            request.headers, body, self._keys, self._clock(), self._tokens, service=self.service
        )
        version = request.headers.get("X-TC-Version", "")
        if version != self.version:
            raise ApiError(
                "NoSuchVersion", f"The API version `{version}` does not exist; use {self.version}."
            )
        handler = self.actions.get(action)
        if handler is None:
            raise ApiError("InvalidAction", f"The action `{action}` does not exist.")
        return action, handler, secret_id

    def _limit(self, secret_id: str, action: str) -> None:
        """RequestLimitExceeded once ``secret_id`` goes over its rate for ``action``."""
        rate = self._action_rates.get(action, self._requests_per_second)
        limiter = self._limiters.get((secret_id, action))
        if limiter is None:
            limiter = RateLimiter(rate, clock=self._monotonic)
            self._limiters[(secret_id, action)] = limiter
        if not limiter.try_acquire():
            raise ApiError(
                "RequestLimitExceeded",
                f"Your request rate exceeds the limit of {rate:g} requests per second for "
                f"{action}. Please reduce the frequency of calls.",
            )


def _raise_for(fault: RequestFault | None) -> None:
    """Refuse the request as ``fault`` says, before the action does anything."""
    if fault is RequestFault.THROTTLE:
        raise ApiError("RequestLimitExceeded", "Request rate limit exceeded (fault injection).")
    if fault is RequestFault.SERVER_ERROR:
        raise _HttpFault("503 Service Unavailable (fault injection)")
    if fault is RequestFault.INTERNAL_ERROR:
        raise ApiError("InternalError", "An internal error occurred (fault injection).")


def _params(request: web.Request, body: bytes) -> dict[str, Any]:
    """The JSON object the body holds, or InvalidParameter."""
    content_type = request.headers.get("Content-Type", "")
    if not content_type.lower().startswith("application/json"):
        raise ApiError("InvalidParameter", "Content-Type must be application/json.")
    try:
        params = json.loads(body)
    except ValueError as exc:
        raise ApiError("InvalidParameter", f"The body is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ApiError("InvalidParameter", "The body must be a JSON object.")
    return params
