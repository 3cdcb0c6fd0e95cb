"""``PictureUrls``: pictures handed to IMS as ``FileUrl`` (IMS spec §3.1) instead of
``FileContent``: each is kept in memory while it is judged and served at a signed,
expiring URL on the engine's listener (the callback inbox's,
:class:`~streamguard.engines.ims.inbox.ImsCallbackInbox`),
``<public base>/ims/pictures/<name>?expires=<unix s>&sig=<hex>``.

``sig`` is HMAC-SHA256 (a key drawn per process) over the name and the expiry; a name is
random per submission, served only until the picture's verdict is in (or its URL expires),
then forgotten. A wrong signature, an expired URL or a name no longer kept is 403/404,
never an exception: the listener faces IMS, and so the internet.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

__all__ = ["PICTURES_PATH", "PictureUrls"]

PICTURES_PATH = "/ims/pictures/"
_MAX_EXPIRES_DIGITS = 12


@dataclass(frozen=True, slots=True)
class _Kept:
    data: bytes
    content_type: str


class PictureUrls:
    """The pictures being judged by URL, and the handler that serves them.

    ``base_url`` is where IMS reaches the listener; ``ttl`` how long a URL is valid (IMS
    downloads within 6 s for ImageModeration, 18 s for an async task).
    """

    def __init__(
        self, base_url: str, *, ttl: float = 120.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._kept: dict[str, _Kept] = {}
        self.served = 0
        """Pictures downloaded (successful GETs)."""

    def route(self) -> web.RouteDef:
        """The listener's route that serves the pictures."""
        return web.get(PICTURES_PATH + "{name}", self._serve)

    def keep(self, data: bytes, content_type: str = "image/jpeg") -> tuple[str, str]:
        """Keep ``data`` and return its name and its signed URL (until :meth:`forget`)."""
        name = secrets.token_urlsafe(16)
        self._kept[name] = _Kept(data, content_type)
        expires = int(self._clock() + self.ttl)
        url = URL(self.base_url + PICTURES_PATH + name).with_query(
            expires=str(expires), sig=self._sign(name, expires)
        )
        return name, str(url)

    def forget(self, name: str) -> None:
        """The picture's verdict is in: it is no longer served."""
        self._kept.pop(name, None)

    def __len__(self) -> int:
        return len(self._kept)

    def _sign(self, name: str, expires: int) -> str:
        message = f"{name}\n{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def _serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = request.query.get("expires", "")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_EXPIRES_DIGITS):
            raise web.HTTPForbidden(text="bad signature")
        expected = self._sign(name, int(raw)).encode("ascii")
        given = request.query.get("sig", "").encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected, given):
            raise web.HTTPForbidden(text="bad signature")
        if int(raw) < self._clock():
            raise web.HTTPForbidden(text="URL expired")
        kept = self._kept.get(name)
        if kept is None:
            raise web.HTTPNotFound(text="no longer kept")
        self.served += 1
        return web.Response(
            body=kept.data,
            headers={"Content-Type": kept.content_type, "Cache-Control": "no-store"},
        )
