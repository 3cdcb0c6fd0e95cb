"""The soak's rooms: live MP3 broadcasts on loopback that log what they sent and take faults.

Each room is an Icecast-like mount (``AiohttpServer``: killed and restarted on the same
port) paced at real time from its own point of the broadcast. Every connection is logged
with the wall time it was opened and the media bytes it was sent: what a listener could
have heard. Faults hit the connections open now: ``stall`` stops sending while keeping the
socket open (until the listener gives up), ``garbage`` writes junk between two pieces of the
broadcast; ``kill``/``start`` drop every connection and refuse new ones for a while.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from streamguard.testing.media_servers import AiohttpServer, garbage

__all__ = ["Connection", "LiveRoom"]

_PACE = 0.05  # seconds between writes
_BURST = 0.5  # seconds of recent audio a new listener gets at once (Icecast's burst)


@dataclass
class Connection:
    """One listener's connection: when it opened (epoch seconds), the media bytes it was
    sent, and how it was treated."""

    opened_at: float
    media_bytes: int = 0
    stalled: bool = False
    junk_bytes: int = 0
    pending_junk: int = field(default=0, repr=False)
    closed_at: float | None = None


class LiveRoom(AiohttpServer):
    """One room broadcast on ``/live``; ``offset`` seconds into the broadcast at start."""

    def __init__(self, media: bytes, seconds: float, offset: float, seed: int) -> None:
        super().__init__()
        self.media = media
        self.byte_rate = len(media) / seconds
        self.url = f"http://127.0.0.1:{self.port}/live"
        self.seed = seed
        self._origin = time.monotonic() - offset
        self.connections: list[Connection] = []

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/live", self._live)
        return app

    def position(self) -> int:
        """The live position in the media, in bytes."""
        return int((time.monotonic() - self._origin) * self.byte_rate) % len(self.media)

    def stall(self) -> int:
        """Stop sending on every open connection; return how many."""
        live = [c for c in self.connections if c.closed_at is None and not c.stalled]
        for connection in live:
            connection.stalled = True
        return len(live)

    def feed_garbage(self) -> int:
        """Junk on every open connection, between two pieces of audio; return how many."""
        live = [c for c in self.connections if c.closed_at is None and not c.stalled]
        for connection in live:
            connection.pending_junk += 1
        return len(live)

    def heard_seconds(self, since: float, until: float) -> float:
        """Media seconds sent on connections opened in [since, until)."""
        sent = sum(c.media_bytes for c in self.connections if since <= c.opened_at < until)
        return sent / self.byte_rate

    async def _live(self, request: web.Request) -> web.StreamResponse:
        connection = Connection(opened_at=time.time())
        self.connections.append(connection)
        response = web.StreamResponse(
            headers={"Content-Type": "audio/mpeg", "icy-name": "streamguard soak"}
        )
        await response.prepare(request)
        transport = self._track(request)
        position = (self.position() - int(_BURST * self.byte_rate)) % len(self.media)
        try:
            while not self.closed.is_set():
                if connection.stalled:
                    if transport is None or transport.is_closing():
                        break
                    await asyncio.sleep(_PACE)
                    continue
                position = await self._send(response, connection, position)
                await asyncio.sleep(_PACE)
        except ConnectionError:  # the listener left, or the server was killed
            pass
        finally:
            connection.closed_at = time.time()
        return response

    async def _send(self, response: web.StreamResponse, connection: Connection, at: int) -> int:
        """Send the broadcast from ``at`` up to the live position (wrapping at the end)."""
        end = self.position()
        piece = self.media[at:end] if end >= at else self.media[at:] + self.media[:end]
        if piece:
            await response.write(piece)
            connection.media_bytes += len(piece)
        if connection.pending_junk:
            junk = garbage(self.seed + len(self.connections) + connection.junk_bytes)
            connection.pending_junk -= 1
            await response.write(junk)
            connection.junk_bytes += len(junk)
        return end
