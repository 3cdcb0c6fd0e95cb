"""Poison messages: no message may stop the outbox (issue 11, item 1).

A message whose publish fails on its own is moved to the dead letters, an instance health
event says so, a metric counts it, and everything behind it is still delivered, over a real
mosquitto, without the publisher loop ever crashing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from prometheus_client import generate_latest

from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.core.metrics import Metrics
from streamguard.core.supervisor import Supervisor
from streamguard.core.topics import Topics
from streamguard.state.db import Database
from streamguard.state.dead_letters import DeadLetters
from streamguard.state.outbox import MessageKind, Outbox, OutboxStore
from streamguard.testing.broker import Mosquitto
from tests.support.backends import Backend
from tests.support.subscriber import Subscriber

LONG_ROOM = "#" * 22_000
"""The room of the issue: percent-encoded, a 66,022-byte topic paho refuses to publish."""


def bus(port: int, prefix: str, **changes: object) -> MqttConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "topic_prefix": prefix,
        "timeout": 1.0,
        "reconnect": BackoffConfig(initial=0.1, maximum=0.3),
        **changes,
    }
    return MqttConfig.model_validate(values)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def queue(outbox: OutboxStore, topics: Topics, names: list[str], room: str = "r") -> None:
    """Events written as a previous run would have left them in the outbox."""
    for name in names:
        payload = json.dumps({"name": name})
        await outbox.add(MessageKind.EVENT, name, topics.alerts(room), payload)


async def test_a_topic_paho_refuses_is_dead_lettered_and_the_rest_goes_on(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = unique("poison")
    topics = Topics(prefix)
    events_topic = topics.instance_events("i-1")
    async with Database(tmp_path / "state.db") as db:
        left = Outbox(db)
        await left.open()
        await queue(left, topics, ["before-1", "before-2"])
        await queue(left, topics, ["poison"], room=LONG_ROOM)
        await queue(left, topics, ["after-1", "after-2"])
    assert len(topics.alerts(LONG_ROOM).encode()) > 65_535
    filters = [f"{prefix}/v1/alerts/+", events_topic]
    async with (
        Subscriber(mosquitto.port, filters, unique("c")) as sub,
        Database(tmp_path / "state.db") as db,
        Supervisor() as supervisor,
        MqttAlerts(bus(mosquitto.port, prefix), db, "i-1", supervisor=supervisor) as sink,
    ):
        got = await sub.wait_until(
            lambda r: (
                {"before-1", "before-2", "after-1", "after-2"}
                <= {m.json.get("name") for m in r if m.topic != events_topic}
                and any(m.topic == events_topic for m in r)
            )
        )
        async with asyncio.timeout(10):
            await sink.outbox.wait_empty()
        assert supervisor.loops["outbox.publisher"].crashes == 0
        assert sink.outbox.dead_lettered_total == 1
        (letter,) = await DeadLetters(db).list()
        assert await DeadLetters(db).count() == 1
    assert (letter.message_id, letter.topic) == ("poison", topics.alerts(LONG_ROOM))
    assert "Publish topic is too long" in letter.error
    delivered = [m.json["name"] for m in got if m.topic != events_topic]
    assert delivered[:4] == ["before-1", "before-2", "after-1", "after-2"]
    (event,) = [m.json for m in got if m.topic == events_topic]
    assert event["kind"] == "message_dead_lettered"
    assert event["message_id"] == "poison"
    assert event["loop"] == "outbox.publisher"
    assert "Publish topic is too long" in event["detail"]
    assert len(event["detail"]) < 1000


async def test_a_message_the_broker_disconnects_over_is_dead_lettered(tmp_path: Path) -> None:
    # A broker with a 10 kB packet limit drops the connection on a larger publish, which
    # looks like any lost connection; on today's main that message is replayed forever.
    (tmp_path / "small-broker").mkdir()
    broker = Mosquitto(tmp_path / "small-broker")
    with broker.config.open("a", encoding="utf-8") as conf:
        conf.write("max_packet_size 10000\n")
    broker.start()
    prefix = unique("oversize")
    topics = Topics(prefix)
    try:
        async with Database(tmp_path / "state.db") as db:
            left = Outbox(db)
            await left.open()
            await queue(left, topics, ["first"])
            await left.add(MessageKind.EVENT, "huge", topics.alerts("r"), "x" * 20_000)
            await queue(left, topics, ["last"])
        async with (
            Subscriber(broker.port, [f"{prefix}/v1/#"], unique("c")) as sub,
            Database(tmp_path / "state.db") as db,
            Supervisor() as supervisor,
            MqttAlerts(bus(broker.port, prefix), db, "i-1", supervisor=supervisor),
        ):
            events_topic = topics.instance_events("i-1")
            got = await sub.wait_until(
                lambda r: (
                    any(m.topic == events_topic for m in r)
                    and "last" in {m.json.get("name") for m in r if m.topic != events_topic}
                ),
                seconds=60,
            )
            assert supervisor.loops["outbox.publisher"].crashes == 0
            (letter,) = await DeadLetters(db).list()
    finally:
        broker.stop()
    assert letter.message_id == "huge"
    assert "connection was lost 3 times in a row" in letter.error
    names = [m.json.get("name") for m in got if m.topic == topics.alerts("r")]
    assert names.count("first") >= 1
    assert names.count("last") >= 1
    (event,) = [m.json for m in got if m.topic == events_topic]
    assert (event["kind"], event["message_id"]) == ("message_dead_lettered", "huge")


async def test_a_payload_that_cannot_be_stamped_is_dead_lettered(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # Alerts are stamped (published_at, latency) at publish time: a row that is not an
    # alert document fails there, before paho, and must not stop the rest either.
    prefix = unique("stamp")
    topics = Topics(prefix)
    async with (
        Subscriber(mosquitto.port, [f"{prefix}/v1/alerts/+"], unique("c")) as sub,
        Database(tmp_path / "state.db") as db,
        Supervisor() as supervisor,
        MqttAlerts(bus(mosquitto.port, prefix), db, "i-1", supervisor=supervisor) as sink,
    ):
        await sink.outbox.add(MessageKind.ALERT, "broken", topics.alerts("r"), "{not json")
        await queue(sink.outbox, topics, ["next"])
        sink.publisher.wake()
        got = await sub.wait_until(lambda r: any(m.json.get("name") == "next" for m in r))
        async with asyncio.timeout(10):
            await sink.outbox.wait_empty()
        assert supervisor.loops["outbox.publisher"].crashes == 0
        (letter,) = await DeadLetters(db).list()
    assert letter.message_id == "broken"
    assert letter.error.startswith("JSONDecodeError")
    assert [m.json["name"] for m in got] == ["next"]


async def test_dead_lettering_moves_the_row_in_one_step(backend: Backend) -> None:
    outbox = backend.outbox(clock=lambda: 100.0)
    await outbox.open()
    await outbox.add(MessageKind.ALERT, "a1", "t/1", "{}")
    await outbox.add(MessageKind.EVENT, "e1", "t/2", "{}")
    first, _ = await outbox.peek(10)
    await outbox.dead_letter(first, "ValueError: no")
    await outbox.dead_letter(first, "ValueError: no")  # already moved: nothing happens
    assert (outbox.depth, outbox.dead_lettered_total) == (1, 1)
    assert [m.message_id for m in await outbox.peek(10)] == ["e1"]
    await backend.reopen()
    (letter,) = await backend.dead_letters()
    assert (letter.message_id, letter.kind, letter.topic, letter.error) == (
        "a1",
        "alert",
        "t/1",
        "ValueError: no",
    )
    assert (letter.created_at, letter.failed_at) == (100.0, 100.0)


async def test_an_unknown_kind_in_the_outbox_goes_out_as_written(tmp_path: Path) -> None:
    async with Database(tmp_path / "state.db") as db:
        outbox = Outbox(db)
        await outbox.open()
        await outbox.add(MessageKind.EVENT, "e1", "t/1", "{}")
        await db.run(lambda conn: conn.execute("UPDATE alerts_outbox SET kind = 'from-v2'"))
        (message,) = await outbox.peek(10)
    assert message.kind is MessageKind.EVENT


def test_dead_letters_are_counted_in_metrics() -> None:
    metrics = Metrics()
    metrics.watch_dead_letters(lambda: 2)
    assert b"streamguard_outbox_dead_letters_total 2.0" in generate_latest(metrics.registry)
