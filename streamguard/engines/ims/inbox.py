"""``ImsCallbackInbox``: where IMS posts the results of async tasks (IMS spec §3.2).

IMS signs nothing and returns no TaskId, so the inbox's URL carries an unguessable token
(a request without it is refused 403), a result is matched by its DataId only, and a
DataId nobody waits for (a duplicate, a late one) is acknowledged and dropped. Bodies may
come bare or wrapped in ``Response``; the inbox answers 200 at once either way.

The same listener serves the pictures sent as ``FileUrl``, when the engine sends them so
(``pictures``, :class:`~streamguard.engines.ims.file_urls.PictureUrls`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from types import TracebackType
from typing import Self

from aiohttp import web
from yarl import URL

from streamguard.core.errors import EngineError
from streamguard.core.serving import start_site
from streamguard.engines.ims.file_urls import PictureUrls
from streamguard.tencentcloud.ims_models import ImageModerationResponse, callback_result

__all__ = ["MAX_CALLBACK_BYTES", "ImsCallbackInbox"]

MAX_CALLBACK_BYTES = 4 * 1024 * 1024
"""A result with every OCR'd word is far smaller; a larger body is refused."""

log = logging.getLogger(__name__)


class ImsCallbackInbox:
    """``async with ImsCallbackInbox(host, port, public_base_url=...)``: serves callbacks.

    ``expect(data_id)`` returns a future its result settles; ``forget`` drops one given up.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        public_base_url: str = "",
        *,
        pictures: PictureUrls | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._public = public_base_url.rstrip("/")
        self.pictures = pictures
        """Pictures served for ``FileUrl`` on this listener (None: none)."""
        self._token = secrets.token_urlsafe(24)
        self._waiting: dict[str, asyncio.Future[ImageModerationResponse]] = {}
        self._runner: web.AppRunner | None = None
        self.received = 0
        self.dropped = 0

    @property
    def url(self) -> str:
        """The CallbackUrl to give IMS."""
        base = self._public or f"http://{self.host}:{self.port}"
        return str(URL(base + "/ims/callback").with_query(token=self._token))

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=MAX_CALLBACK_BYTES)
        app.router.add_post("/ims/callback", self._handle)
        if self.pictures is not None:
            app.add_routes([self.pictures.route()])
        self._runner, self.port = await start_site(app, self.host, self.port)
        if self.pictures is not None and not self.pictures.base_url:
            self.pictures.base_url = f"http://{self.host}:{self.port}"  # no public base
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(EngineError("the IMS callback inbox closed"))
        self._waiting.clear()
        if runner is not None:
            await runner.cleanup()

    def expect(self, data_id: str) -> asyncio.Future[ImageModerationResponse]:
        """A future settled by the callback naming ``data_id``."""
        future: asyncio.Future[ImageModerationResponse] = asyncio.get_running_loop().create_future()
        self._waiting[data_id] = future
        return future

    def forget(self, data_id: str) -> None:
        """Stop waiting for ``data_id`` (a late callback is then dropped)."""
        future = self._waiting.pop(data_id, None)
        if future is not None:
            future.cancel()

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            raise web.HTTPForbidden(text="unknown callback token")
        result = callback_result(await request.read())
        self.received += 1
        future = self._waiting.pop(result.data_id, None) if result is not None else None
        if result is None or future is None or future.done():
            self.dropped += 1
            log.info("IMS callback dropped (unreadable, duplicate or not awaited)")
        else:
            future.set_result(result)
        return web.Response(text="ok")
