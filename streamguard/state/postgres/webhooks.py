"""Webhook deliveries in fleet mode: each alert delivered once per destination across the
fleet, by whichever live instance holds that destination.

A trigger (``schema.WEBHOOKS_MIGRATIONS``) copies every alert inserted into the shared
``alerts_outbox`` into ``webhook_deliveries``, one row per registered destination, in the
outbox insert's own transaction: no alert can reach MQTT and miss the webhooks, whichever
instance wrote it, even across a crash. A delivery row is deleted once its destination
answered 2xx (or the alert was filtered out, or dead-lettered).

One instance at a time sends a destination's alerts: it holds the destination
(``holder``, ``held_until``), taken with ``FOR UPDATE SKIP LOCKED`` like a stream's lease
when nobody holds it or its hold expired, and renewed before every look at the feed and
every retry (``keep``), and given back at a clean stop (``release``). So a destination's
alerts go out one at a time in outbox order,
retried with backoff as on one machine, and a dead instance's destinations are taken over
once its hold expires. Alerts written at the same instant by two instances may cross (a
row committed after a later one was sent goes next). Delivery stays at least once: a holder
paused past its hold may resend what its successor sends too (same ``alert_id``).

Destinations are what the live instances configure: each instance lists its own
(``webhook_listings``) at start; a destination no live instance lists any more is forgotten
with the deliveries only it waited for. A new destination is not sent the history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from streamguard.state.postgres.database import Connection, PgDatabase
from streamguard.state.webhooks import WebhookMessage

__all__ = ["PgWebhookDeliveries"]


class PgWebhookDeliveries:
    """``state.webhooks.WebhookDeliveries``' surface on the shared database, plus ``keep``."""

    def __init__(
        self,
        db: PgDatabase,
        instance_id: str,
        *,
        alive_within: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``alive_within``: an instance that renewed its fleet heartbeat this recently is
        alive (``state.lease_seconds``)."""
        self._db = db
        self.instance_id = instance_id
        self._alive = timedelta(seconds=alive_within)
        self._clock = clock

    async def register(self, destinations: Sequence[str]) -> None:
        """List ``destinations`` as this instance's; forget those no live instance lists."""
        names = list(destinations)

        async def apply(conn: Connection) -> None:
            me = self.instance_id
            await conn.execute("DELETE FROM webhook_listings WHERE instance_id = %s", (me,))
            await conn.execute(
                "INSERT INTO webhook_listings (destination, instance_id)"
                " SELECT unnest(%s::text[]), %s",
                (names, me),
            )
            await conn.execute(
                "INSERT INTO webhook_destinations (destination) SELECT unnest(%s::text[])"
                " ON CONFLICT (destination) DO NOTHING",
                (names,),
            )
            await conn.execute(_FORGET, {"me": me, "alive": self._alive})

        await self._db.run(apply)

    async def keep(self, destination: str, seconds: float) -> bool:
        """Hold ``destination`` (or renew the hold) for ``seconds``; False when another live
        instance holds it (it sends its alerts)."""

        async def hold(conn: Connection) -> bool:
            cursor = await conn.execute(
                _HOLD,
                {"me": self.instance_id, "name": destination, "ttl": timedelta(seconds=seconds)},
            )
            return await cursor.fetchone() is not None

        return await self._db.run(hold)

    async def release(self, destination: str) -> None:
        """Give ``destination`` back (a clean stop): another instance takes it at its next
        look instead of when the hold expires."""

        async def release(conn: Connection) -> None:
            await conn.execute(
                "UPDATE webhook_destinations SET holder = NULL, held_until = NULL"
                " WHERE destination = %s AND holder = %s",
                (destination, self.instance_id),
            )

        await self._db.run(release)

    async def pending(self, destination: str, limit: int) -> list[WebhookMessage]:
        """The oldest ``limit`` alerts waiting for ``destination``, in outbox order; none
        unless this instance holds it (``keep``)."""

        async def select(conn: Connection) -> list[WebhookMessage]:
            cursor = await conn.execute(
                "SELECT d.seq, d.message_id, d.payload, d.created_at FROM webhook_deliveries d"
                " JOIN webhook_destinations w ON w.destination = d.destination"
                " WHERE d.destination = %s AND w.holder = %s AND w.held_until > now()"
                " ORDER BY d.seq LIMIT %s",
                (destination, self.instance_id, limit),
            )
            return [WebhookMessage(*row) for row in await cursor.fetchall()]

        return await self._db.run(select)

    async def backlog(self, destination: str) -> int:
        """How many alerts wait for ``destination``, fleet-wide."""

        async def count(conn: Connection) -> int:
            cursor = await conn.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE destination = %s", (destination,)
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

        return await self._db.run(count)

    async def delivered(self, destination: str, seq: int) -> None:
        """The alert ``seq`` is done for ``destination`` (delivered, or not wanted there)."""

        async def delete(conn: Connection) -> None:
            await _done(conn, destination, seq)

        await self._db.run(delete)

    async def dead_letter(self, destination: str, message: WebhookMessage, error: str) -> None:
        """Give up on ``message`` for ``destination``: into the shared dead letters (topic
        ``webhook:<destination>``) and out of the deliveries, in one transaction."""
        now = self._clock()

        async def move(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO outbox_dead_letters (message_id, kind, topic, payload,"
                " created_at, failed_at, error) VALUES (%s, 'alert', %s, %s, %s, %s, %s)",
                (
                    message.message_id,
                    f"webhook:{destination}",
                    message.payload,
                    message.created_at,
                    now,
                    error,
                ),
            )
            await _done(conn, destination, message.seq)

        await self._db.run(move)


async def _done(conn: Connection, destination: str, seq: int) -> None:
    await conn.execute(
        "DELETE FROM webhook_deliveries WHERE destination = %s AND seq = %s", (destination, seq)
    )


_HOLD = """
WITH free AS (
    SELECT destination FROM webhook_destinations
    WHERE destination = %(name)s
      AND (holder IS NULL OR holder = %(me)s OR held_until < now())
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_destinations AS w SET holder = %(me)s, held_until = now() + %(ttl)s
FROM free WHERE w.destination = free.destination
RETURNING w.destination
"""
"""Hold a destination nobody holds (or whose hold expired), or renew this instance's."""

_FORGET = """
WITH gone AS (
    DELETE FROM webhook_destinations AS w
    WHERE NOT EXISTS (
        SELECT 1 FROM webhook_listings AS l JOIN fleet_instances AS f USING (instance_id)
        WHERE l.destination = w.destination
          AND (l.instance_id = %(me)s OR f.heartbeat_at > now() - %(alive)s)
    )
    RETURNING destination
)
DELETE FROM webhook_deliveries WHERE destination IN (SELECT destination FROM gone)
"""
"""Forget the destinations no live instance lists, with what waited for them."""
