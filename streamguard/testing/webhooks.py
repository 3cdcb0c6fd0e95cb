"""A real webhook receiver on loopback (aiohttp): checks each POST's signature as a consumer
would, records what arrived, and can answer 500 after reading a body (a lost answer)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Received:
    """One POST as the receiver saw it."""

    alert_id: str
    verified: bool
    answered: int
    body: dict[str, Any]


@dataclass(slots=True)
class WebhookReceiver:
    """``async with WebhookReceiver(port, secret)``: listens until the block ends;
    ``fail_next`` POSTs are read, recorded and answered 500."""

    port: int
    secret: bytes
    fail_next: int = 0
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at every POST (clear it to wait for the next)."""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered_ids(self) -> list[str]:
        """Alert ids answered 2xx, in arrival order."""
        return [r.alert_id for r in self.received if r.answered == 200]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get("X-Streamguard-Timestamp", "")
        signature = request.headers.get("X-Streamguard-Signature", "")
        expected = hmac.new(self.secret, f"{timestamp}.".encode() + body, hashlib.sha256)
        verified = hmac.compare_digest(signature, "v1=" + expected.hexdigest())
        alert = json.loads(body)
        status = 200
        if self.fail_next:
            self.fail_next -= 1
            status = 500
        self.received.append(Received(alert["alert_id"], verified, status, alert))
        self.arrived.set()
        return web.Response(status=status)
