"""Loopback peers for the IMS tests: the emulator (IMS beside AMS), and a web server that
serves images (plus a redirect, a 404 and a slow one) and collects callbacks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streamguard.core.serving import start_site
from streamguard.emulator import AmsEmulator, EmulatorOptions
from streamguard.emulator.ims_samples import picture, sample_image
from streamguard.testing.engines import ToneEngine
from tests.support.ams import KEYS

__all__ = ["BLUE", "MAGENTA", "RED", "YELLOW", "ImagePeer", "image_of", "ims_peers"]

RED = (255, 0, 0)
MAGENTA = (255, 0, 255)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)


def image_of(marker: tuple[int, int, int] | None, size: tuple[int, int] = (320, 240)) -> bytes:
    """A JPEG that the emulator's rule judges by ``marker`` (None: a clean grey picture)."""
    return sample_image([picture(*size, marker)])


@dataclass
class ImagePeer:
    """Serves ``images`` under /img/NAME and collects what is POSTed to /callback."""

    images: dict[str, bytes] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    slow_seconds: float = 5.0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/img/{name}", self._image)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/slow", self._slow)
        app.router.add_post("/callback", self._callback)
        return app

    async def _image(self, request: web.Request) -> web.Response:
        data = self.images.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg")

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.url("img/red"))

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.slow_seconds)
        return web.Response(body=self.images.get("red", b""), content_type="image/jpeg")

    async def _callback(self, request: web.Request) -> web.Response:
        self.callbacks.append(json.loads(await request.read()))
        return web.Response(text="ok")


@asynccontextmanager
async def ims_peers() -> AsyncIterator[tuple[AmsEmulator, ImagePeer]]:
    """The emulator and an image peer, both on loopback, stopped on exit: the emulator first,
    since it is the peer's client (downloads, callbacks) — the other way round a download or
    callback still in flight could connect to the peer as it closes, a socket nobody closes."""
    peer = ImagePeer()
    async with AsyncExitStack() as stack:
        runner, peer.port = await start_site(peer.app(), "127.0.0.1", 0, shutdown_timeout=0.5)
        stack.push_async_callback(runner.cleanup)
        emulator = await stack.enter_async_context(
            AmsEmulator(ToneEngine(), EmulatorOptions(keys=KEYS))
        )
        yield emulator, peer
