"""The shared outbox over a real broker: the alerts an instance left waiting when it died
are published by a live instance, every one of them, each with its ``alert_id``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.config.policy import ProfileConfig
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.outbox import MessageKind
from streamguard.state.postgres import outbox as outbox_module
from streamguard.state.postgres.database import Connection, PgDatabase
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.outbox import PgOutbox
from streamguard.testing.alerts import risky, segment, stream
from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from tests.support.subscriber import Subscriber

PROFILES = {"default": ProfileConfig(cooldown_seconds=0, incident_quiet_seconds=3600)}
LEASE = 0.5


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


def bus(port: int, prefix: str) -> MqttConfig:
    return MqttConfig(
        host="127.0.0.1",
        port=port,
        topic_prefix=prefix,
        timeout=1.0,
        reconnect=BackoffConfig(initial=0.1, maximum=0.3),
        shutdown_drain_seconds=0.5,
    )


async def raise_alerts(alerting: Alerting, count: int) -> list[Alert]:
    config = stream("s1", "room-1")
    alerts: list[Alert] = []
    for seq in range(count):
        seg = segment(config.id, seq)
        alerts += await Outcomes(alerting.profiles, alerting).handle(config, seg, risky(seg), None)
    return alerts


async def test_a_dead_instances_waiting_alerts_are_published_by_a_live_one(
    db: PgDatabase, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = f"shared-{uuid.uuid4().hex[:8]}"
    dead, alive = Fleet(db, "dead", lease_seconds=LEASE), Fleet(db, "alive", lease_seconds=LEASE)
    await dead.join()
    # The instance that dies never reaches its broker: its alerts wait in the shared outbox.
    async with (
        Database(tmp_path / "dead.db") as local,
        MqttAlerts(
            bus(free_port(), prefix),
            local,
            "dead",
            outbox=PgOutbox(db, "dead", dead_after=LEASE),
        ) as sink,
        Alerting(PROFILES, sink, instance_id="dead") as alerting,
    ):
        left = await raise_alerts(alerting, 3)
    assert len(left) == 3

    await alive.join()
    async with (
        Subscriber(mosquitto.port, [f"{prefix}/v1/alerts/+"], f"c-{prefix}") as consumer,
        Database(tmp_path / "alive.db") as local,
        MqttAlerts(
            bus(mosquitto.port, prefix),
            local,
            "alive",
            outbox=PgOutbox(db, "alive", dead_after=LEASE),
        ) as sink,
    ):
        wanted = {a.alert_id for a in left}

        async def renew_and_poke() -> None:
            while True:  # alive renews, dead does not: its heartbeat grows old
                await alive.renew()
                sink.publisher.wake()
                await asyncio.sleep(0.1)

        async with asyncio.TaskGroup() as group:
            poke = group.create_task(renew_and_poke(), name="test.renew")
            got = await consumer.wait_until(
                lambda r: wanted <= {m.json.get("alert_id") for m in r}, 60
            )
            poke.cancel()
    published = [m.json["alert_id"] for m in got if m.json.get("alert_id") in wanted]
    assert sorted(published) == sorted(wanted)  # each once
    assert got[0].json["stream"]["room_id"] == "room-1"


async def test_the_depth_counts_up_to_its_bound_and_the_oldest_by_sequence(
    db: PgDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long backlog is not counted in full at every read: the depth stops at the bound.
    monkeypatch.setattr(outbox_module, "DEPTH_BOUND", 3)
    clock = iter(float(n) for n in range(100, 200))
    outbox = PgOutbox(db, "i0", dead_after=LEASE, clock=lambda: next(clock))
    await Fleet(db, "i0", lease_seconds=LEASE).join()
    for n in range(5):
        assert await outbox.add(MessageKind.EVENT, f"m{n}", "t", "{}")
    await outbox.open()
    assert (outbox.depth, outbox.oldest_created_at) == (3, 100.0)
    (first,) = await outbox.peek(1)
    await outbox.remove([first.seq])
    assert (outbox.depth, outbox.oldest_created_at) == (3, 101.0)
    for message in await outbox.peek(10):
        await outbox.remove([message.seq])
    assert (outbox.depth, outbox.oldest_created_at) == (0, None)


async def test_a_read_leaves_held_topics_out_neither_reading_nor_claiming_them(
    db: PgDatabase,
) -> None:
    """The publisher's held topics are filtered in the claim itself: a backlog of them at the
    head costs nothing, and they stay free for the next read."""
    outbox = PgOutbox(db, "i0", dead_after=LEASE)
    await Fleet(db, "i0", lease_seconds=LEASE).join()
    for n in range(5):
        await outbox.add(MessageKind.EVENT, f"held{n}", "t/held", "{}")
    await outbox.add(MessageKind.EVENT, "free", "t/free", "{}")
    got = await outbox.peek(2, skip_topics=["t/held", "t/other"])
    assert [m.message_id for m in got] == ["free"]

    async def claimed(conn: Connection) -> list[str]:
        cursor = await conn.execute(
            "SELECT message_id FROM alerts_outbox WHERE claimed_by IS NOT NULL"
        )
        return [row[0] for row in await cursor.fetchall()]

    assert await db.run(claimed) == ["free"]
    assert [m.message_id for m in await outbox.peek(2)] == ["held0", "held1"]
