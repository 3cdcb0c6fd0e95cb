"""Small servers on one loopback address each, for the address policy's tests: web sites,
a listener that counts connections, an RTSP server that answers with redirects."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

from streamguard.testing.net import free_port
from tests.support.media_servers import HlsSegment

__all__ = ["Listener", "RedirectingRtsp", "RtmpConnects", "Site", "moved", "playlist"]


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


class Listener:
    """A TCP port on ``host`` that counts connections and closes them."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


def moved(cseq: bytes, location: str) -> bytes:
    """A plain RTSP redirect answering request ``cseq``."""
    return (
        b"RTSP/1.0 302 Moved Temporarily\r\nCSeq: "
        + cseq
        + b"\r\nLocation: "
        + location.encode()
        + b"\r\nContent-Length: 0\r\n\r\n"
    )


class RedirectingRtsp:
    """An RTSP server on 127.0.0.1 that answers every request with a redirect to
    ``location``: ``answer(cseq, location)`` says how (:func:`moved` by default)."""

    def __init__(self, location: str, answer: Callable[[bytes, str], bytes] = moved) -> None:
        self.location = location
        self.answer = answer
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/room"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, OSError):
            writer.close()
            return
        cseq = next(
            (
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"cseq:")
            ),
            b"1",
        )
        writer.write(self.answer(cseq, self.location))
        await writer.drain()
        writer.close()


class RtmpConnects:
    """A loopback RTMP server that records the ``tcUrl`` of each client's ``connect``
    command, then hangs up (the client never plays). With ``tls`` it is RTMPS, and records
    the name each client asked for in its TLS handshake (SNI; None for none) in ``names``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tc_urls: list[str] = []
        self.names: list[str | None] = []
        self.port = 0
        self.tls = tls
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        if self.tls is not None:
            self.tls.sni_callback = lambda _, name, __: self.names.append(name)
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await reader.readexactly(1 + 1536)  # C0, C1
            # S0, S1 (version 0: FFmpeg checks no digest), S2 (C1 echoed); then C2.
            writer.write(b"\x03" + bytes(1536) + hello[1:])
            await reader.readexactly(1536)
            header = await reader.readexactly(12)  # basic header (fmt 0) + message header
            size = int.from_bytes(header[4:7], "big")
            payload = b""
            while len(payload) < size:
                if payload:
                    await reader.readexactly(1)  # a continuation chunk's basic header
                payload += await reader.readexactly(min(128, size - len(payload)))
            self.tc_urls.append(_amf_string(payload, b"tcUrl"))
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


def _amf_string(payload: bytes, name: bytes) -> str:
    """The string property ``name`` of an AMF0 command's object."""
    key = len(name).to_bytes(2, "big") + name + b"\x02"
    start = payload.index(key) + len(key)
    size = int.from_bytes(payload[start : start + 2], "big")
    return payload[start + 2 : start + 2 + size].decode()
