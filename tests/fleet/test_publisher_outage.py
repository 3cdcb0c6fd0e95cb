"""The shared database stopped under a running publisher (real PostgreSQL, real mosquitto):
the publisher stays connected and waits in ``waiting_for_outbox`` (health says so) instead
of crashing its loop, and publishes again once the database is back; acknowledged messages
whose delete the outage refused are deleted afterwards, not sent again."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamguard.bus.publisher import PublisherState
from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.core.supervisor import Supervisor
from streamguard.state.db import Database, StorageUnavailable
from streamguard.state.outbox import MessageKind
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.outbox import PgOutbox
from streamguard.testing.broker import Mosquitto
from streamguard.testing.postgres import PostgresServer
from tests.support.subscriber import Subscriber


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def add_when_back(outbox: PgOutbox, topic: str, n: int) -> None:
    """Add message ``n``, retrying while the pool reconnects to the restarted server."""
    async with asyncio.timeout(60):
        while True:
            try:
                await outbox.add(MessageKind.EVENT, f"m{n}", topic, json.dumps({"n": n}))
                return
            except StorageUnavailable:
                await asyncio.sleep(0.2)


async def test_the_publisher_waits_for_the_database_instead_of_crashing(
    postgres: PostgresServer, db: PgDatabase, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}/v1/events/test"
    await Fleet(db, "a", lease_seconds=30).join()
    outbox = PgOutbox(db, "a", dead_after=30)
    config = MqttConfig(
        host="127.0.0.1",
        port=mosquitto.port,
        topic_prefix=prefix,
        timeout=1.0,
        reconnect=BackoffConfig(initial=0.1, maximum=0.3),
        shutdown_drain_seconds=0.5,
    )
    async with (
        Supervisor() as supervisor,
        Subscriber(mosquitto.port, [topic], f"c-{prefix}") as consumer,
        Database(tmp_path / "local.db") as local,
        MqttAlerts(config, local, "a", outbox=outbox, supervisor=supervisor) as sink,
    ):
        publisher = sink.publisher
        await add_when_back(outbox, topic, 1)
        publisher.wake()
        await consumer.wait_until(lambda r: [m.json["n"] for m in r] == [1], 60)

        await asyncio.to_thread(postgres.stop)
        try:
            publisher.wake()
            async with asyncio.timeout(60):
                await publisher.wait_state(PublisherState.WAITING_FOR_OUTBOX)
            health = sink.health()
            assert not health.ok
            assert "waiting_for_outbox" in health.reason
            assert "outbox unreachable" in health.reason
            await asyncio.sleep(1.0)  # several retries while it is away
            assert publisher.state is PublisherState.WAITING_FOR_OUTBOX
        finally:
            await asyncio.to_thread(postgres.start)

        await add_when_back(outbox, topic, 2)
        publisher.wake()
        got = await consumer.wait_until(lambda r: [m.json["n"] for m in r] == [1, 2], 60)
        assert [m.json["n"] for m in got] == [1, 2]  # each once
        async with asyncio.timeout(60):
            await publisher.wait_state(PublisherState.CONNECTED)
        assert sink.health().ok
        loop = supervisor.loops["outbox.publisher"]
        assert loop.crashes == 0
        assert not loop.task.done()
        assert publisher.connects_total == 1  # the bus connection stayed up


async def test_an_ack_the_outage_kept_from_deleting_is_deleted_later_not_resent(
    postgres: PostgresServer, db: PgDatabase
) -> None:
    await Fleet(db, "a", lease_seconds=30).join()
    outbox = PgOutbox(db, "a", dead_after=30)
    await outbox.open()
    for n in range(3):
        await outbox.add(MessageKind.EVENT, f"m{n}", "t/events", json.dumps({"n": n}))
    peeked = await outbox.peek(10)
    assert len(peeked) == 3

    await asyncio.to_thread(postgres.stop)
    try:
        await outbox.remove([m.seq for m in peeked[:2]])  # acknowledged: kept, no raise
        with pytest.raises(StorageUnavailable):
            await outbox.peek(10)
    finally:
        await asyncio.to_thread(postgres.start)

    async with asyncio.timeout(60):
        while True:
            try:
                again = await outbox.peek(10)
                break
            except StorageUnavailable:
                await asyncio.sleep(0.2)
    assert [m.message_id for m in again] == ["m2"]
    assert outbox.depth == 1
    assert outbox.removed_total == 2
