"""An Icecast-like live server on loopback, for source tests and the ingest benchmark.

It runs on the caller's event loop (aiohttp), owns its resources as an async context manager
and can be killed and restarted on the same port. ``AiohttpServer`` is its base, for other
loopback HTTP servers of the tests.
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from types import TracebackType
from typing import Self

from aiohttp import web

from streamguard.testing.net import free_port

__all__ = ["AiohttpServer", "IcecastServer", "garbage"]

_PACE = 0.05  # seconds between writes of a paced stream


def garbage(seed: int = 0, size: int = 3000) -> bytes:
    """Junk for the middle of a stream: random bytes, then fake MP3/ADTS frame headers with
    random payloads, which a parser accepts as frames and a decoder rejects."""
    rng = random.Random(seed)
    fake_mp3 = b"".join(b"\xff\xfb\x50\xc4" + rng.randbytes(200) for _ in range(10))
    fake_adts = b"".join(
        bytes([0xFF, 0xF1, 0x50, 0x80, 0x1B, 0x1F, 0xFC]) + rng.randbytes(209) for _ in range(10)
    )
    return rng.randbytes(size) + fake_mp3 + fake_adts


class AiohttpServer(abc.ABC):
    """An aiohttp app on a fixed loopback port that can be killed (connections reset) and
    started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._open: set[asyncio.Transport] = set()
        self.closed = asyncio.Event()  # set while killed: silent handlers return then

    @abc.abstractmethod
    def _app(self) -> web.Application:
        """The routes this server answers."""

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self.closed.clear()
        self._runner = web.AppRunner(self._app(), shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def kill(self) -> None:
        """Drop every connection at once, as a crashed server would, and stop listening."""
        self.closed.set()
        for transport in list(self._open):
            transport.abort()
        self._open.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _track(self, request: web.Request) -> asyncio.Transport | None:
        transport = request.transport
        if isinstance(transport, asyncio.Transport):
            self._open.add(transport)
            return transport
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()


class IcecastServer(AiohttpServer):
    """One encoded file broadcast like an Icecast mount, at real-time pace.

    The broadcast clock starts at the first ``start``; a listener gets the stream from the
    live position, minus a ``burst`` of recent audio (as Icecast's burst-on-connect), so a
    restarted server carries on where the broadcast is, not where it stopped. The next
    connection can be made to ``stall_after`` seconds (socket open, no bytes) or to receive
    ``garbage_after`` seconds of audio followed by junk bytes.
    """

    def __init__(
        self, media: bytes, seconds: float, *, burst: float = 0.5, content_type: str = "audio/mpeg"
    ) -> None:
        super().__init__()
        self.media = media
        self.byte_rate = len(media) / seconds
        self.burst = burst
        self.content_type = content_type
        self.url = f"http://127.0.0.1:{self.port}/live"
        self.started_at: float | None = None
        self.stall_after: float | None = None
        self.garbage_after: float | None = None
        self.connections = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/live", self._live)
        return app

    async def start(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
        await super().start()

    def _live_position(self) -> int:
        assert self.started_at is not None
        return int((time.monotonic() - self.started_at) * self.byte_rate)

    async def _live(self, request: web.Request) -> web.StreamResponse:
        position = max(0, self._live_position() - int(self.burst * self.byte_rate))
        if position >= len(self.media):
            raise web.HTTPNotFound(text="the broadcast is over")
        self.connections += 1
        stall, self.stall_after = self.stall_after, None
        junk, self.garbage_after = self.garbage_after, None
        response = web.StreamResponse(
            headers={"Content-Type": self.content_type, "icy-name": "streamguard test"}
        )
        await response.prepare(request)
        self._track(request)
        connected = time.monotonic()
        try:
            while position < len(self.media):
                end = min(len(self.media), self._live_position())
                if end > position:
                    await response.write(self.media[position:end])
                    position = end
                since = time.monotonic() - connected
                if stall is not None and since >= stall:
                    await self.closed.wait()  # keep the socket open, send nothing
                    return response
                if junk is not None and since >= junk:
                    await response.write(garbage())
                    junk = None
                await asyncio.sleep(_PACE)
        except ConnectionError:  # the client left or the server was killed
            return response
        return response
