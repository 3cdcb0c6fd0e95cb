"""Webhooks: every alert POSTed to each ``[[webhooks]]`` destination, signed, in order.

Fed from the MQTT outbox through ``state.webhooks`` (a feed the outbox's own transaction
fills, and one cursor per destination), or in fleet mode ``state.postgres.webhooks`` (one
delivery row per alert and destination, filled by a trigger on the shared outbox; each
destination sent by one live instance at a time, which holds it: ``keep`` before every look
and every retry, so each alert is delivered once across the fleet). A destination's sender
posts its alerts one at a time in outbox order and moves its cursor only on a 2xx answer:
at least once, in order. Anything else (a refused connection, a timeout, a 5xx, a 4xx, a
redirect) is retried after ``core.Backoff``'s delay, until the alert is older than
``dead_letter_after_seconds``; it is then moved to the dead letters and the next one goes.
A retry resends the same alert (same ``alert_id``), stamped and signed anew.

Each POST's body is the alert JSON (stamped as published now) with the headers
``X-Streamguard-Timestamp`` (Unix seconds) and ``X-Streamguard-Signature: v1=<hex>``, the
HMAC-SHA256 of ``"{timestamp}.{body}"`` under the destination's secret (``sign``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp

from streamguard.config.webhooks import WebhookConfig
from streamguard.core.backoff import Backoff
from streamguard.core.supervisor import Loop, Supervisor, shared_or_own
from streamguard.core.version import __version__
from streamguard.moderation.alert import stamp_published
from streamguard.moderation.policy import RiskLevel
from streamguard.state.db import Database, StateError
from streamguard.state.webhooks import WebhookDeliveries, WebhookMessage

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookSender", "Webhooks", "sign"]

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Streamguard-Timestamp"
SIGNATURE_HEADER = "X-Streamguard-Signature"
BATCH = 50
"""Alerts read from the feed at a time (still posted one by one)."""
IDLE_POLL_SECONDS = 5.0
"""An idle sender looks at the feed this often even when nobody wakes it."""


class Deliveries(Protocol):
    """The feed the senders read: ``state.webhooks.WebhookDeliveries`` (SQLite) or
    ``state.postgres.webhooks.PgWebhookDeliveries`` (fleet mode)."""

    async def register(self, destinations: list[str]) -> None: ...

    async def keep(self, destination: str, seconds: float) -> bool: ...

    async def release(self, destination: str) -> None: ...

    async def pending(self, destination: str, limit: int) -> list[WebhookMessage]: ...

    async def backlog(self, destination: str) -> int: ...

    async def delivered(self, destination: str, seq: int) -> None: ...

    async def dead_letter(self, destination: str, message: WebhookMessage, error: str) -> None: ...


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Streamguard-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


@dataclass(slots=True)
class SenderStats:
    """What ``/metrics`` reports about one destination."""

    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    oldest_created_at: float | None = None
    """When the alert being tried now was written; None while nothing waits."""


class WebhookSender:
    """Delivers one destination's alerts; ``run`` until ``request_stop``."""

    def __init__(
        self,
        config: WebhookConfig,
        deliveries: Deliveries,
        *,
        stale_after: float = math.inf,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._stale_after = stale_after
        self.name = config.name
        self._deliveries = deliveries
        self._clock = clock
        self._secret = config.secret.get_secret_value().encode() if config.secret else b""
        self._backoff = Backoff.of(config.retry)
        self.hold_seconds = config.timeout + config.retry.maximum + 2 * IDLE_POLL_SECONDS
        """How long a look or a retry holds the destination (fleet mode): longer than a
        POST and the longest wait before the next retry, which renew it."""
        self._held = True
        self._held_until = 0.0
        """``time.monotonic()`` until which this sender holds the destination, as it knows."""
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.stats = SenderStats()
        self.last_error: str | None = None
        self._caught_up = asyncio.Event()
        self._looks = 0
        self._empty_look = 0
        """The last look at the feed that found nothing for this destination."""

    def wake(self) -> None:
        """Tell the sender the feed has something new."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop after the request in flight; what is left waits in the feed."""
        self._stopping.set()
        self._wake.set()

    async def wait_caught_up(self) -> None:
        """Return once a look at the feed begun after this call found nothing to send."""
        wanted = self._looks + 1
        self.wake()
        while self._empty_look < wanted:
            self._caught_up.clear()
            await self._caught_up.wait()

    def oldest_age(self) -> float:
        """Seconds the alert being tried now has waited (0 when none waits)."""
        oldest = self.stats.oldest_created_at
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    async def run(self) -> None:
        """Deliver until stopped (a supervised loop: one that raises is restarted)."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping.is_set():
                self._wake.clear()
                self._looks += 1
                look = self._looks
                held = await self._hold_for(0.0)
                batch = await self._deliveries.pending(self.name, BATCH) if held else []
                if not batch:
                    self.stats.oldest_created_at = None
                    self._empty_look = look
                    self._caught_up.set()
                    await self._idle()
                    continue
                for message in batch:
                    if not await self._deliver(session, message):
                        return  # stopping
                    if not self._held:
                        break  # another instance took the destination over

    async def _idle(self) -> None:
        try:
            async with asyncio.timeout(IDLE_POLL_SECONDS):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _expired(self, message: WebhookMessage) -> bool:
        return self._clock() - message.created_at >= self.config.dead_letter_after_seconds

    async def _dead_letter(self, message: WebhookMessage, error: str) -> None:
        waited = self._clock() - message.created_at
        fields = {"webhook": self.name, "alert_id": message.message_id}
        text = "webhook %s: alert %s dead-lettered after %.0f s: %s"
        log.error(text, self.name, message.message_id, waited, error, extra=fields)
        self.stats.dead_lettered += 1
        await self._deliveries.dead_letter(self.name, message, error)

    async def _deliver(self, session: aiohttp.ClientSession, message: WebhookMessage) -> bool:
        """Post ``message`` until it is delivered or dead-lettered; False when stopping."""
        self.stats.oldest_created_at = message.created_at
        alert = json.loads(message.payload)
        if not self._wanted(alert):
            self.stats.filtered += 1
            await self._deliveries.delivered(self.name, message.seq)
            return True
        failures = 0
        if not await self._hold_for(0.0):
            return True
        while not self._stopping.is_set():
            if self.last_error is not None and self._expired(message):
                # The receiver is known down and this alert is already past its age: do not
                # spend a POST timeout on it (a long outage would otherwise never catch up).
                await self._dead_letter(message, self.last_error)
                return True
            error = await self._post(session, alert)
            if error is None:
                self.stats.delivered += 1
                self.last_error = None
                await self._deliveries.delivered(self.name, message.seq)
                return True
            self.stats.failed_attempts += 1
            self.last_error = error
            if self._expired(message):
                await self._dead_letter(message, error)
                return True
            failures += 1
            delay = self._backoff.delay(failures)
            if not await self._hold_for(delay):
                return True
            text = "webhook %s unavailable (%s); retrying in %.1f s"
            log.warning(text, self.name, error, delay, extra={"webhook": self.name})
            try:
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            except TimeoutError:
                pass
        return False

    async def _hold_for(self, seconds: float) -> bool:
        """Make sure this instance holds the destination for ``seconds`` more and a POST
        (the hold is renewed only when it is short of that); False when another instance
        holds it now (it sends these alerts: leave them)."""
        needed = seconds + self.config.timeout + IDLE_POLL_SECONDS
        if self._held and time.monotonic() + needed < self._held_until:
            return True
        ttl = self.hold_seconds + seconds
        self._held = await self._deliveries.keep(self.name, ttl)
        self._held_until = time.monotonic() + ttl if self._held else 0.0
        return self._held

    def _wanted(self, alert: dict[str, Any]) -> bool:
        risk = alert.get("risk") or {}
        if self.config.labels and risk.get("label") not in self.config.labels:
            return False
        try:
            level = RiskLevel(risk.get("level", "none"))
        except ValueError:
            return True  # a level this version does not know: send rather than drop
        return level.rank >= RiskLevel(self.config.min_risk).rank

    async def _post(self, session: aiohttp.ClientSession, alert: dict[str, Any]) -> str | None:
        """One attempt; None when the receiver answered 2xx, else what went wrong."""
        stamped = stamp_published(alert, datetime.now(UTC), self._stale_after)
        body = json.dumps(stamped, ensure_ascii=False).encode()
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"streamguard/{__version__}",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        try:
            async with session.post(
                self.config.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"


class Webhooks:
    """Every destination's sender as one async context manager (entered at start, even with
    no destination: registering none forgets the cursors of removed ones)."""

    def __init__(
        self,
        configs: list[WebhookConfig],
        db: Database,
        *,
        deliveries: Deliveries | None = None,
        supervisor: Supervisor | None = None,
        stale_after: float = math.inf,
        drain_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``stale_after``: seconds after detection from which an alert is marked stale
        (``mqtt.stale_after_seconds``, as on the bus); ``drain_seconds``: on exit, how long
        the senders may go on delivering what waits (the alerts raised at shutdown);
        ``deliveries``: fleet mode's shared feed (default: the SQLite one in ``db``)."""
        self._drain_seconds = drain_seconds
        self.deliveries: Deliveries = deliveries or WebhookDeliveries(db, clock)
        self.senders = [
            WebhookSender(c, self.deliveries, stale_after=stale_after, clock=clock) for c in configs
        ]
        self._shared = supervisor
        self._stack = AsyncExitStack()
        self._loops: list[Loop] = []

    async def __aenter__(self) -> Self:
        await self.deliveries.register([s.name for s in self.senders])
        async with AsyncExitStack() as stack:
            supervisor = await shared_or_own(self._shared, stack)
            for sender in self.senders:
                self._loops.append(supervisor.start(f"webhook[{sender.name}]", sender.run))
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._drain()
        for sender in self.senders:
            sender.request_stop()
        for loop in self._loops:
            await loop.stop()
        await self._stack.aclose()
        for sender in self.senders:  # fleet mode: the others take them over at once
            try:
                await self.deliveries.release(sender.name)
            except StateError as exc:
                log.warning("webhook %s: not released (its hold expires): %s", sender.name, exc)

    async def _drain(self) -> None:
        """Let the senders deliver what waits, for at most ``drain_seconds``; the rest waits
        in the feed for the next start."""
        if not self.senders or self._drain_seconds <= 0:
            return
        waits = [sender.wait_caught_up() for sender in self.senders]
        with suppress(TimeoutError):
            async with asyncio.timeout(self._drain_seconds):
                await asyncio.gather(*waits)

    def wake(self) -> None:
        """Tell every sender an alert was written."""
        for sender in self.senders:
            sender.wake()

    def stats(self) -> dict[str, dict[str, float]]:
        """Per destination: delivered, failed attempts, dead-lettered, filtered, oldest age."""
        return {
            s.name: {
                "delivered": s.stats.delivered,
                "failed_attempts": s.stats.failed_attempts,
                "dead_lettered": s.stats.dead_lettered,
                "filtered": s.stats.filtered,
                "oldest_age": s.oldest_age(),
            }
            for s in self.senders
        }
