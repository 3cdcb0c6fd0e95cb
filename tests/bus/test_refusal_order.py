"""Refusals that must not stop or reorder the rest (MQTT 5 PUBACK failure codes).

1. A held topic's backlog, however long, does not starve the other topics: the outbox read
   leaves held topics out in its query (a real mosquitto's ACL refuses one topic with 0x87).
2. A topic keeps its order: a message goes only once the one before it on its topic was
   acknowledged, so a refused first message (0x97 quota, once) is delivered before the next.
3. A message refused for itself (0x99 payload format invalid) ``REFUSAL_ATTEMPTS`` times in a
   row is moved to the dead letters, reason kept and counted, and its topic goes on.

mosquitto refuses by topic only, never a message for its content, so 2 and 3 put a relay in
front of it that answers chosen messages with the reason code a broker with payload rules
would send (``tests.support.refusing_proxy``); everything else is the real broker's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from streamguard.bus.refusals import REFUSAL_ATTEMPTS, Refusal, RefusedTopics
from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.core.backoff import Backoff
from streamguard.core.metrics import Metrics
from streamguard.core.topics import Topics
from streamguard.state.db import Database
from streamguard.state.dead_letters import DeadLetters
from streamguard.state.outbox import MessageKind, Outbox
from streamguard.testing.broker import Mosquitto
from tests.bus.test_refusals import USER, AclBroker
from tests.support.refusing_proxy import RefusingProxy
from tests.support.subscriber import Subscriber


def bus(port: int, prefix: str, **changes: object) -> MqttConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "topic_prefix": prefix,
        "username": USER,
        "protocol": "5",
        "timeout": 2.0,
        "reconnect": BackoffConfig(initial=0.1, maximum=0.5),
        **changes,
    }
    return MqttConfig.model_validate(values)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    mosquitto = Mosquitto(workdir)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


async def write(outbox: Outbox, topic: str, *payloads: Mapping[str, object]) -> None:
    for payload in payloads:
        await outbox.add(MessageKind.EVENT, unique("m"), topic, json.dumps(payload))


async def test_a_held_backlog_longer_than_any_read_does_not_starve_other_topics(
    tmp_path: Path,
) -> None:
    """1,200 messages of a topic the ACL denies sit at the head of the outbox (more than the
    1,124 the publisher used to read past); the allowed topic's message behind them goes."""
    (tmp_path / "broker").mkdir()
    acl = AclBroker(tmp_path / "broker")
    prefix = unique("starve")
    held, free = f"{prefix}/held/x", f"{prefix}/free/x"
    acl.allow(f"{prefix}/v1/instances/#", f"{prefix}/free/#")
    acl.broker.start()
    try:
        async with Database(tmp_path / "state.db") as db:
            await write(Outbox(db), held, *({"n": n} for n in range(1200)))
            await write(Outbox(db), free, {"n": "free"})
            async with (
                Subscriber(acl.port, [f"{prefix}/free/#"], unique("c")) as sub,
                MqttAlerts(bus(acl.port, prefix, inflight=10), db, "i-1") as sink,
            ):
                await sub.wait_until(lambda r: any(m.topic == free for m in r))
                assert held in sink.publisher.refusals.held
                assert sink.outbox.depth == 1200
    finally:
        acl.broker.stop()


async def test_the_outbox_read_leaves_held_topics_out(tmp_path: Path) -> None:
    async with Database(tmp_path / "state.db") as db:
        outbox = Outbox(db)
        await write(outbox, "t/held", *({"n": n} for n in range(5)))
        await write(outbox, "t/other", {"n": 5})
        await write(outbox, "t/free", {"n": 6}, {"n": 7})
        got = await outbox.peek(2, skip_topics=["t/held", "t/other"])
        assert [json.loads(m.payload)["n"] for m in got] == [6, 7]
        assert len(await outbox.peek(10)) == 8


async def test_a_topic_keeps_its_order_when_its_first_message_is_refused(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """The broker refuses the first of two messages on a topic once (0x97 quota exceeded)
    and accepts everything else: the subscriber gets them in the order written."""
    prefix = unique("order")
    topic, other = f"{prefix}/t/a", f"{prefix}/t/b"
    async with RefusingProxy(broker.port) as proxy, Database(tmp_path / "state.db") as db:
        proxy.refuse("over-quota", 0x97, times=1)
        await write(Outbox(db), topic, {"n": 0, "tag": "over-quota"}, {"n": 1})
        await write(Outbox(db), other, {"n": 2})
        async with (
            Subscriber(broker.port, [f"{prefix}/t/#"], unique("c")) as sub,
            MqttAlerts(bus(proxy.port, prefix), db, "i-1") as sink,
        ):
            await sink.outbox.wait_empty()
            got = await sub.wait_until(lambda r: len(r) >= 3)
    assert proxy.refused == [b"over-quota"]
    assert [m.json["n"] for m in got if m.topic == topic] == [0, 1]
    assert [m.json["n"] for m in got if m.topic == other] == [2]


async def test_a_message_refused_for_itself_is_dead_lettered_and_its_topic_goes_on(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """The broker refuses one message for its payload (0x99) every time: after
    ``REFUSAL_ATTEMPTS`` refusals it is in the dead letters with the reason, counted, and
    the message behind it on the same topic is delivered."""
    prefix = unique("dead")
    topic = f"{prefix}/t/a"
    events = Topics(prefix).instance_events("i-1")
    async with RefusingProxy(broker.port) as proxy, Database(tmp_path / "state.db") as db:
        proxy.refuse("bad-payload", 0x99)
        await write(Outbox(db), topic, {"n": 0, "tag": "bad-payload"}, {"n": 1})
        async with (
            Subscriber(broker.port, [f"{prefix}/t/#", events], unique("c")) as sub,
            MqttAlerts(bus(proxy.port, prefix), db, "i-1") as sink,
        ):
            got = await sub.wait_until(
                lambda r: any(m.topic == topic for m in r) and any(m.topic == events for m in r)
            )
            await sink.outbox.wait_empty()
            assert not sink.publisher.refusals.held  # the topic was released
            metrics = Metrics()
            metrics.watch_dead_letters(lambda: sink.outbox.dead_lettered_total)
            scraped = generate_latest(metrics.registry).decode()
            assert sink.outbox.dead_lettered_total == 1
        (letter,) = await DeadLetters(db).list()
    assert proxy.refused == [b"bad-payload"] * REFUSAL_ATTEMPTS
    assert [m.json["n"] for m in got if m.topic == topic] == [1]
    assert json.loads(letter.payload)["tag"] == "bad-payload"
    assert "0x99 Payload format invalid" in letter.error
    assert any(" 1.0" in line for line in scraped.splitlines() if "dead_letter" in line)
    (event,) = [m.json for m in got if m.topic == events]
    assert event["kind"] == "message_dead_lettered"


def test_only_a_message_refused_for_itself_again_and_again_is_given_up() -> None:
    refusals = RefusedTopics(Backoff(initial=1.0, maximum=8.0, jitter=0.0))
    invalid, denied = Refusal(0x99, "Payload format invalid"), Refusal(0x87, "Not authorized")
    quota = Refusal(0x97, "Quota exceeded")
    # Not authorized concerns the topic: never given up, however often.
    assert not any(refusals.refused("t/a", "m1", denied, 0.0, seq=1) for _ in range(10))
    # Quota exceeded may pass: never given up either.
    assert not any(refusals.refused("t/q", "m1", quota, 0.0, seq=1) for _ in range(10))
    # Payload format invalid: the same message, the same code, REFUSAL_ATTEMPTS times.
    assert [refusals.refused("t/b", "m2", invalid, 0.0, seq=2) for _ in range(3)] == [
        False,
        False,
        True,
    ]
    refusals.release("t/b")
    assert "t/b" not in refusals.held
    # Another message in between, or another code, starts the count again.
    refusals.refused("t/c", "m3", invalid, 0.0, seq=3)
    refusals.refused("t/c", "m3", quota, 0.0, seq=3)
    refusals.refused("t/c", "m3", invalid, 0.0, seq=3)
    assert not refusals.refused("t/c", "m3", invalid, 0.0, seq=3)
    assert refusals.refused("t/c", "m3", invalid, 0.0, seq=3)
    assert refusals.held_back(0.5) == ["t/a", "t/q", "t/c"]
