"""Serving segment clips to AMS at HMAC-signed, expiring URLs.

AMS fetches each task's audio by URL, so the daemon serves its clip directory itself:
``<public base>/clips/<relative path>?expires=<unix s>&sig=<hex>``, where ``sig`` is
HMAC-SHA256 over the path and expiry. A bad or expired signature gets 403 (so does an
``expires`` that is not a plain decimal number or a ``sig`` that is not ASCII: the listener
is public, and nothing a stranger sends may raise); paths are resolved and must stay inside
the clip directory; Range requests work (``FileResponse``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Self

from aiohttp import web
from yarl import URL

from streamguard.core.private import private_dir
from streamguard.core.serving import HEADER_TIMEOUT, start_site

__all__ = ["CALLBACK_PATH", "CallbackHandler", "ClipServer"]

_PREFIX = "/clips/"
CALLBACK_PATH = "/ams/callback"
MAX_CALLBACK_BYTES = 4 * 1024 * 1024
CALLBACK_BODY_TIMEOUT = 30.0
"""Seconds a callback's body may take to arrive in full before the request gets 408."""
_MAX_EXPIRES_DIGITS = 12  # unix seconds until the year 33658: any URL this server gave out

CallbackHandler = Callable[[bytes, Mapping[str, str]], Awaitable[int]]
"""Handles an AMS callback (raw body, headers) and returns the HTTP status to answer."""


class ClipServer:
    """Owns the HTTP listener that serves ``root``; ``async with`` starts and stops it.

    ``public_base_url`` is how AMS reaches this listener (a reverse proxy or public
    address); empty means the listen address itself.
    """

    def __init__(
        self,
        root: Path,
        key: bytes,
        *,
        public_base_url: str = "",
        ttl: float = 3600.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        header_timeout: float = HEADER_TIMEOUT,
    ) -> None:
        if not key:
            raise ValueError("the URL signing key must not be empty")
        self.root = root.resolve()
        self._key = key
        self.public_base_url = public_base_url.rstrip("/")
        self.ttl = ttl
        self.host = host
        self.port = port
        self._clock = clock
        self._header_timeout = header_timeout
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=MAX_CALLBACK_BYTES)
        self.app.router.add_get(_PREFIX + "{name:.+}", self._serve)
        self.app.router.add_post(CALLBACK_PATH, self._callback)
        self.on_callback: CallbackHandler | None = None
        """Set by the AMS engine to receive task results AMS pushes (404 while unset)."""
        self.fetches = 0
        """Clips served (successful GETs), for tests and the benchmark."""

    @property
    def base_url(self) -> str:
        """Where clip URLs point: the public base URL, else the listen address."""
        return self.public_base_url or f"http://{self.host}:{self.port}"

    @property
    def callback_url(self) -> str:
        """Where AMS should POST task results (the same listener, so the same reachability)."""
        return self.base_url + CALLBACK_PATH

    async def __aenter__(self) -> Self:
        private_dir(self.root)
        self._runner, self.port = await start_site(
            self.app, self.host, self.port, header_timeout=self._header_timeout
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _sign(self, name: str, expires: int) -> str:
        # surrogatepass: a request path may decode to lone surrogates; it must not raise.
        message = f"{name}\n{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _signed(self, name: str, expires: int, given: str) -> bool:
        expected = self._sign(name, expires).encode("ascii")
        return hmac.compare_digest(expected, given.encode("utf-8", "surrogatepass"))

    def relative_name(self, clip: Path) -> str:
        """The clip's path inside ``root``; ValueError when it is outside."""
        resolved = clip.resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"clip {clip} is not inside the served directory {self.root}")
        return resolved.relative_to(self.root).as_posix()

    def url_for(self, clip: Path, ttl: float | None = None) -> str:
        """A signed URL for a clip inside ``root``, valid for ``ttl`` seconds."""
        name = self.relative_name(clip)
        expires = int(self._clock() + (self.ttl if ttl is None else ttl))
        url = URL(self.base_url + _PREFIX).join(URL(name))
        return str(url.with_query(expires=str(expires), sig=self._sign(name, expires)))

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        expires = _expiry(request.query.get("expires", ""))
        if expires is None or not self._signed(name, expires, request.query.get("sig", "")):
            raise web.HTTPForbidden(text="bad signature")
        if expires < self._clock():
            raise web.HTTPForbidden(text="URL expired")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts:
            raise web.HTTPNotFound()
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise web.HTTPNotFound()
        self.fetches += 1
        return web.FileResponse(path)

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        handler = self.on_callback
        if handler is None:
            raise web.HTTPNotFound()
        try:
            async with asyncio.timeout(CALLBACK_BODY_TIMEOUT):
                body = await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout() from None
        return web.Response(status=await handler(body, request.headers))


def _expiry(raw: str) -> int | None:
    """The ``expires`` of a clip URL, or None unless it is a plain ASCII decimal number of
    sane length (``str.isdigit`` alone admits "²", which ``int`` refuses)."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_EXPIRES_DIGITS):
        return None
    return int(raw)
