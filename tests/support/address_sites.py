"""Small web servers on one loopback address each, for the address policy's tests."""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Self

from aiohttp import web

from streamguard.testing.net import free_port
from tests.support.media_servers import HlsSegment

__all__ = ["Site", "playlist"]


class Site:
    """A small web server on one loopback address: a recording, a 404, redirects, playlists.
    ``requests`` counts every request it was sent."""

    def __init__(self, host: str, recording: bytes, *, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = free_port()
        self.recording = recording
        self.tls = tls
        self.playlists: dict[str, str] = {}
        self.segments: dict[str, bytes] = {}
        self.requests = 0
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{path}"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/room.mp3", self._recording)
        app.router.add_get("/to", self._redirect)
        app.router.add_get("/hls/{name}", self._hls)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls).start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _recording(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=self.recording, content_type="audio/mpeg")

    async def _redirect(self, request: web.Request) -> web.Response:
        self.requests += 1
        raise web.HTTPFound(request.query["url"])

    async def _hls(self, request: web.Request) -> web.Response:
        self.requests += 1
        name = request.match_info["name"]
        if name in self.playlists:
            return web.Response(
                text=self.playlists[name], content_type="application/vnd.apple.mpegurl"
            )
        if name in self.segments:
            return web.Response(body=self.segments[name], content_type="video/mp2t")
        raise web.HTTPNotFound()


def playlist(urls: list[str], segments: list[HlsSegment]) -> str:
    """A finished (recorded) HLS playlist of ``segments`` at ``urls``."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for url, segment in zip(urls, segments, strict=True):
        lines += [f"#EXTINF:{segment.seconds:.6f},", url]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"
