"""The IMS emulator (IMS spec §7), served beside AMS on the same port.

Both APIs are ``POST /``; a request's credential scope names its service (``…/ims/tc3_request``
for IMS), so ``by_service`` hands each request to the front of the service it was signed
for (a request without a readable scope goes to the default front, which answers its
AuthFailure). ``ImsService`` owns what IMS needs: its ``ApiFront`` (signature, version,
request faults, envelope), its actions (``ims_actions``), the HTTP session for downloads and
callbacks, and the background tasks of async requests, which ``lifecycle`` awaits (cancelled)
when the app stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from streamguard.emulator.faults import Faults
from streamguard.emulator.front import ApiFront
from streamguard.emulator.ims_actions import ImsActions
from streamguard.emulator.ims_options import ImsFaults, ImsOptions
from streamguard.emulator.options import EmulatorStats
from streamguard.tencentcloud.signing import parse_authorization

__all__ = ["API_VERSION", "SERVICE", "Handler", "ImsService", "by_service"]

SERVICE = "ims"
API_VERSION = "2020-12-29"
_UNLIMITED = 1e9  # the front's own rate limit; the actions apply IMS's per-action ones

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def by_service(fronts: Mapping[str, Handler], default: Handler) -> Handler:
    """A handler passing each request to the front of the service its signature names."""

    async def route(request: web.Request) -> web.StreamResponse:
        auth = parse_authorization(request.headers.get("Authorization", ""))
        handler = fronts.get(auth.service) if auth is not None else None
        return await (handler or default)(request)

    return route


class ImsService:
    """The emulated IMS: ``handle`` answers requests, ``lifecycle`` (an aiohttp cleanup
    context) owns its session and background tasks. ``options``, ``faults`` and
    ``request_faults`` (throttling, 5xx, latency at the front) may be replaced at any time."""

    def __init__(
        self,
        options: ImsOptions,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.faults = ImsFaults()
        self.request_faults = Faults()
        self.stats = EmulatorStats()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.actions = ImsActions(
            lambda: self.options,
            lambda: self.faults,
            self._open_session,
            self._spawn,
            monotonic,
        )
        self.front = ApiFront(
            SERVICE,
            API_VERSION,
            self.actions.table(),
            self.stats,
            keys=options.keys,
            tokens=options.tokens,
            requests_per_second=_UNLIMITED,
            faults=lambda: self.request_faults,
            clock=clock,
            monotonic=monotonic,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one IMS request."""
        return await self.front.handle(request)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """Open the session with the app; at its end stop the background tasks, then close."""
        self._session = aiohttp.ClientSession()
        self.front.open()
        try:
            yield
        finally:
            self.front.close()
            await self.drain(cancel=True)
            session, self._session = self._session, None
            await session.close()

    async def drain(self, *, cancel: bool = False) -> None:
        """Wait for the async tasks running now to finish (or cancel them first)."""
        tasks = list(self._tasks)
        if cancel:
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the IMS emulator is not running")
        return self._session

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
