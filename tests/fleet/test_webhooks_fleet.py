"""Webhooks in fleet mode, on a real PostgreSQL with the real webhook receiver: alerts written
to the shared outbox by two instances are delivered once each (a trigger fills the
deliveries in the outbox insert's transaction; one live instance holds the destination and
sends, retrying with backoff), and a dead holder's destination is taken over."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from streamguard.bus.webhooks import Webhooks
from streamguard.config.ingest import BackoffConfig
from streamguard.config.webhooks import WebhookConfig
from streamguard.state.db import Database
from streamguard.state.outbox import MessageKind
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.outbox import PgOutbox
from streamguard.state.postgres.webhooks import PgWebhookDeliveries
from streamguard.testing.net import free_port
from streamguard.testing.webhooks import WebhookReceiver
from tests.support.waiting import eventually

SECRET = "s3cret-for-tests"
LEASE = 15.0


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


def hook(url: str) -> WebhookConfig:
    values: dict[str, Any] = {
        "name": "ops",
        "url": url,
        "secret": SecretStr(SECRET),
        "timeout": 5.0,
        "retry": BackoffConfig(initial=0.1, maximum=0.5),
    }
    return WebhookConfig.model_validate(values)


def alert(alert_id: str) -> str:
    return json.dumps(
        {
            "schema_version": "1",
            "alert_id": alert_id,
            "risk": {"level": "high", "label": "Abuse"},
            "detected_at": "2026-11-28T03:00:00+00:00",
            "incident": {"event": "new"},
        }
    )


class Instance:
    """One instance's part: its fleet membership, its outbox writer and its webhooks."""

    def __init__(self, db: PgDatabase, name: str, receiver: WebhookReceiver) -> None:
        self.name = name
        self.db = db
        self.outbox = PgOutbox(db, name, dead_after=LEASE)
        self.deliveries = PgWebhookDeliveries(db, name, alive_within=LEASE)
        self.receiver = receiver
        self.webhooks: Webhooks | None = None

    async def start(self, stack: AsyncExitStack, tmp: Path) -> Webhooks:
        await Fleet(self.db, self.name, lease_seconds=LEASE).join()
        local = await stack.enter_async_context(Database(tmp / f"{self.name}.db"))
        hooks = Webhooks([hook(self.receiver.url)], local, deliveries=self.deliveries)
        self.webhooks = await stack.enter_async_context(hooks)
        return self.webhooks

    async def raise_alerts(self, ids: list[str]) -> None:
        for alert_id in ids:
            await self.outbox.add(MessageKind.ALERT, alert_id, "sg/v1/alerts", alert(alert_id))
        await self.outbox.add(MessageKind.EVENT, f"{self.name}-ev", "sg/v1/events", "{}")
        assert self.webhooks is not None
        self.webhooks.wake()


async def holder(db: PgDatabase) -> str | None:
    async def read(conn: Any) -> str | None:
        cursor = await conn.execute("SELECT holder FROM webhook_destinations")
        row = await cursor.fetchone()
        return None if row is None else row[0]

    return await db.run(read)


async def test_two_instances_deliver_each_alert_once(db: PgDatabase, tmp_path: Path) -> None:
    receiver = WebhookReceiver(free_port(), SECRET.encode(), fail_next=2)  # retried
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(receiver)
        a, b = Instance(db, "a", receiver), Instance(db, "b", receiver)
        await a.start(stack, tmp_path)
        await b.start(stack, tmp_path)
        sent = [f"{who}-{n}" for n in range(6) for who in ("a", "b")]
        await a.raise_alerts(sent[0::2])
        await b.raise_alerts(sent[1::2])
        await eventually(lambda: set(receiver.delivered_ids()) == set(sent))
        await eventually(lambda: _backlog_empty(a))
        for instance in (a, b):
            assert instance.webhooks is not None
            await instance.webhooks.senders[0].wait_caught_up()
    assert await holder(db) is None  # released at the stop
    counts = Counter(receiver.delivered_ids())
    assert counts == Counter(sent)  # each once, events not sent
    assert all(r.verified for r in receiver.received)
    assert [r.answered for r in receiver.received].count(500) == 2


async def _backlog_empty(instance: Instance) -> bool:
    return await instance.deliveries.backlog("ops") == 0


async def test_a_dead_holders_destination_is_taken_over(db: PgDatabase, tmp_path: Path) -> None:
    receiver = WebhookReceiver(free_port(), SECRET.encode())
    async with AsyncExitStack() as outer:
        await outer.enter_async_context(receiver)
        a, b = Instance(db, "a", receiver), Instance(db, "b", receiver)
        async with AsyncExitStack() as a_stack:
            await a.start(a_stack, tmp_path)
            await a.raise_alerts(["first"])
            await eventually(lambda: receiver.delivered_ids() == ["first"])
            assert await holder(db) == "a"
        assert await holder(db) is None  # a clean stop gives it back
        # a is dead (its senders stopped, its hold not released): alerts wait for it.
        await db.run(
            lambda conn: conn.execute(
                "UPDATE webhook_destinations SET holder = 'a',"
                " held_until = now() + interval '1 hour'"
            )
        )
        await b.start(outer, tmp_path)
        await a.raise_alerts(["left-by-a-1", "left-by-a-2"])
        assert b.webhooks is not None
        await b.webhooks.senders[0].wait_caught_up()
        assert await a.deliveries.backlog("ops") == 2
        # Its hold expires (as a dead instance's does): b takes the destination over.
        await db.run(
            lambda conn: conn.execute(
                "UPDATE webhook_destinations SET held_until = now() - interval '1 second'"
            )
        )
        b.webhooks.wake()
        await eventually(lambda: len(receiver.delivered_ids()) == 3)
        assert await holder(db) == "b"
    assert receiver.delivered_ids() == ["first", "left-by-a-1", "left-by-a-2"]
