"""Publishes the broker refuses (MQTT 5 PUBACK failure reason codes) are not delivered.

A real mosquitto with an ACL file denies the alert topic of one room to the publisher's user;
it answers the MQTT 5 publish with PUBACK 0x87 (Not authorized). The alert must stay in the
outbox, the refusal must show in health and metrics, the other rooms' alerts must still go
out, and once the broker allows the topic (restarted with a new ACL, same port, same outbox)
the alert is delivered, as a real subscriber sees by ``alert_id``. MQTT 3.1.1 has no reason
codes: the same refusal is acknowledged like a delivery, which the last tests pin down.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from prometheus_client import generate_latest

from streamguard.bus.refusals import (
    PubackWatch,
    PublishRefused,
    Refusal,
    RefusedTopics,
    paho_client,
)
from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.config.policy import ProfileConfig
from streamguard.core.backoff import Backoff
from streamguard.core.metrics import Metrics
from streamguard.core.status import StreamState, StreamStatus
from streamguard.core.topics import Topics
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.outbox import MessageKind, OutboxMessage
from streamguard.testing.alerts import risky, segment, stream
from streamguard.testing.broker import Mosquitto
from tests.support.subscriber import Subscriber
from tests.support.waiting import eventually

PROFILES = {"default": ProfileConfig(cooldown_seconds=0, incident_quiet_seconds=3600)}
USER = "streamguard"
"""The publisher's user name, which the ACL files name (the subscriber is anonymous)."""


class AclBroker:
    """A mosquitto of its own whose ACL file can be rewritten before a restart."""

    def __init__(self, workdir: Path) -> None:
        self.broker = Mosquitto(workdir)
        self.acl = workdir / "acl"
        with self.broker.config.open("a", encoding="utf-8") as config:
            config.write(f"acl_file {self.acl}\nlog_type all\n")  # denials are debug lines

    @property
    def port(self) -> int:
        return self.broker.port

    def allow(self, *writable: str) -> None:
        """Anonymous clients read everything; ``USER`` writes only ``writable``."""
        lines = ["topic read #", f"user {USER}", *(f"topic write {t}" for t in writable)]
        self.acl.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def denied(self) -> list[str]:
        """The lines of the broker's log about publishes its ACL denied."""
        log = (self.broker.workdir / "mosquitto.log").read_text(encoding="utf-8", errors="replace")
        return [line for line in log.splitlines() if "Denied PUBLISH" in line]


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[AclBroker]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = AclBroker(workdir)
    try:
        yield broker
    finally:
        broker.broker.stop()


def bus(port: int, prefix: str, **changes: object) -> MqttConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "topic_prefix": prefix,
        "username": USER,
        "timeout": 2.0,
        "reconnect": BackoffConfig(initial=0.1, maximum=0.5),
        **changes,
    }
    return MqttConfig.model_validate(values)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def alerts_in(alerting: Alerting, room: str, count: int) -> list[Alert]:
    config = stream(f"s-{room}", room)
    alerts: list[Alert] = []
    for seq in range(count):
        seg = segment(config.id, seq)
        alerts += await Outcomes(alerting.profiles, alerting).handle(config, seg, risky(seg), None)
    return alerts


async def test_a_refused_alert_stays_in_the_outbox_until_the_broker_allows_it(
    acl_broker: AclBroker, tmp_path: Path
) -> None:
    prefix = unique("refused")
    topics = Topics(prefix)
    shut, status_topic = topics.alerts("room-shut"), topics.stream_status("s-room-shut")
    # The instance status and the open room's alerts may be written; not room-shut's alerts,
    # nor any stream status.
    acl_broker.allow(f"{prefix}/v1/instances/#", topics.alerts("room-open"))
    acl_broker.broker.start()
    filters = [f"{prefix}/v1/alerts/+", f"{prefix}/v1/streams/+/status"]
    # One message in flight: the open room's alerts are reached only by reading past the
    # held ones.
    async with (
        Subscriber(acl_broker.port, filters, unique("c")) as sub,
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(acl_broker.port, prefix, protocol="5", inflight=1), db, "i-1") as sink,
        Alerting(PROFILES, sink, instance_id="i-1") as alerting,
    ):
        refused = await alerts_in(alerting, "room-shut", 2)
        now = datetime.now(UTC)
        await sink.status(StreamStatus("s-room-shut", "room-shut", StreamState.ONLINE, now))
        delivered = await alerts_in(alerting, "room-open", 2)
        # The open room's alerts, written after the refused ones, go out all the same.
        await sub.wait_until(
            lambda r: {a.alert_id for a in delivered} <= {m.json.get("alert_id") for m in r}
        )
        await eventually(lambda: sink.publisher.refusals.refused_total["0x87 Not authorized"] >= 2)

        await eventually(lambda: sink.outbox.depth == 2)  # the open room's PUBACKs are in
        waiting = {m.message_id for m in await sink.outbox.peek(100)}
        assert waiting == {a.alert_id for a in refused}
        assert not [m for m in sub.received if m.topic in (shut, status_topic)]
        assert shut in sink.publisher.refusals.held
        health = sink.health()
        assert not health.ok
        assert "0x87 Not authorized" in health.reason
        assert shut in health.reason
        assert health.backlog == 2
        assert any(shut in line for line in acl_broker.denied())
        metrics = Metrics()
        refusals = sink.publisher.refusals
        metrics.watch_refusals(lambda: refusals.refused_total, lambda: len(refusals.held))
        scraped = generate_latest(metrics.registry).decode()
        assert 'streamguard_bus_publishes_refused_total{reason="0x87 Not authorized"}' in scraped
        assert "streamguard_bus_refused_topics 2.0" in scraped  # the alerts' and the status'
        connects = sink.publisher.connects_total

        # The operator fixes the ACL and has the broker reload it: the held topic's next
        # try, on the same connection, delivers the alerts.
        acl_broker.allow(f"{prefix}/#")
        acl_broker.broker.reload()
        got = list(  # a copy: the incidents' end alerts follow when Alerting exits
            await sub.wait_until(
                lambda r: (
                    {a.alert_id for a in refused} <= {m.json.get("alert_id") for m in r}
                    and any(m.topic == status_topic for m in r)
                )
            )
        )
        await sink.outbox.wait_empty()
        assert sink.health().ok
        assert not sink.publisher.refusals.held
        assert sink.publisher.connects_total == connects  # retried, not reconnected
    shut_ids = [m.json["alert_id"] for m in got if m.topic == shut]
    assert shut_ids == [a.alert_id for a in refused]  # once each, in the order written


async def test_a_refused_alert_waits_across_a_restart_for_a_broker_that_allows_it(
    acl_broker: AclBroker, tmp_path: Path
) -> None:
    """The daemon stops with the refused alert still in its outbox; started again on the same
    database against a second broker whose ACL allows the topic, it delivers it."""
    prefix = unique("restart")
    topics = Topics(prefix)
    acl_broker.allow(f"{prefix}/v1/instances/#")
    acl_broker.broker.start()
    async with (
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(acl_broker.port, prefix), db, "i-1") as sink,
        Alerting(PROFILES, sink, instance_id="i-1") as alerting,
    ):
        refused = await alerts_in(alerting, "room-shut", 1)
        await eventually(lambda: bool(sink.publisher.refusals.refused_total))
    assert sink.outbox.depth >= 1  # the alert, and the incident's end Alerting wrote on exit

    (tmp_path / "second").mkdir()
    second = Mosquitto(tmp_path / "second")
    second.start()
    try:
        async with (
            Subscriber(second.port, [f"{prefix}/v1/alerts/+"], unique("c")) as sub,
            Database(tmp_path / "state.db") as db,
            MqttAlerts(bus(second.port, prefix), db, "i-1") as sink,
        ):
            await sink.outbox.wait_empty()
            got = await sub.wait_until(
                lambda r: {a.alert_id for a in refused} <= {m.json["alert_id"] for m in r}
            )
            assert sink.health().ok
    finally:
        second.stop()
    assert {m.topic for m in got} == {topics.alerts("room-shut")}


async def test_puback_watch_raises_on_0x87_over_mqtt_5(acl_broker: AclBroker) -> None:
    """The quick experiment, kept: mosquitto answers an ACL-denied MQTT 5 publish with PUBACK
    0x87, which ``PubackWatch`` turns into ``PublishRefused``; an allowed one passes."""
    acl_broker.allow("open/#")
    acl_broker.broker.start()
    v5 = aiomqtt.ProtocolVersion.V5
    async with aiomqtt.Client(
        "127.0.0.1", acl_broker.port, username=USER, protocol=v5, timeout=5
    ) as client:
        acks = PubackWatch(client)
        await acks.publish("open/a", "1", qos=1)
        with pytest.raises(PublishRefused) as refused:
            await acks.publish("shut/a", "2", qos=1)
        await acks.publish("open/b", "3", qos=1)  # the connection is still good
    assert refused.value.topic == "shut/a"
    assert (refused.value.refusal.code, refused.value.refusal.name) == (0x87, "Not authorized")
    assert refused.value.refusal.permanent


async def test_mqtt_3_1_1_cannot_tell_a_refusal_from_a_delivery(acl_broker: AclBroker) -> None:
    """The limit: mosquitto acknowledges the denied 3.1.1 publish with a plain PUBACK (MQTT
    3.1.1 has no reason codes) and drops the message; nothing can be raised."""
    acl_broker.allow("open/#")
    acl_broker.broker.start()
    v311 = aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(
        "127.0.0.1", acl_broker.port, username=USER, protocol=v311, timeout=5
    ) as client:
        acks = PubackWatch(client)
        await acks.publish("shut/a", "1", qos=1)  # no PublishRefused: the PUBACK says nothing
    assert any("'shut/a'" in line for line in acl_broker.denied())


async def test_over_mqtt_3_1_1_a_denied_alert_is_lost(
    acl_broker: AclBroker, tmp_path: Path
) -> None:
    """Documents the limit end to end: with ``protocol = "3.1.1"`` the broker's silent drop
    empties the outbox of the denied alert, and only the broker's log tells."""
    prefix = unique("v311")
    topics = Topics(prefix)
    acl_broker.allow(f"{prefix}/v1/instances/#", topics.alerts("room-open"))
    acl_broker.broker.start()
    async with (
        Subscriber(acl_broker.port, [f"{prefix}/v1/alerts/+"], unique("c")) as sub,
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(acl_broker.port, prefix, protocol="3.1.1"), db, "i-1") as sink,
        Alerting(PROFILES, sink, instance_id="i-1") as alerting,
    ):
        await alerts_in(alerting, "room-shut", 1)
        (after,) = await alerts_in(alerting, "room-open", 1)
        got = list(
            await sub.wait_until(lambda r: any(m.json["alert_id"] == after.alert_id for m in r))
        )
        await sink.outbox.wait_empty()
        assert not sink.publisher.refusals.refused_total
        assert sink.health().ok
    # Published before the open room's alert on the same connection, the denied one would
    # have reached the subscriber first.
    assert [m.topic for m in got] == [topics.alerts("room-open")]
    assert any(topics.alerts("room-shut") in line for line in acl_broker.denied())


async def test_the_private_route_to_paho_still_holds() -> None:
    """``paho_client`` is the one use of aiomqtt's internals: if aiomqtt stops keeping a
    paho client with a VERSION2 ``on_publish`` (reason code and properties), this fails."""
    client = aiomqtt.Client("127.0.0.1", 1)
    inner = paho_client(client)
    assert isinstance(inner, paho.Client)
    handler = inner.on_publish
    assert handler is not None
    parameters = list(inspect.signature(handler).parameters)
    assert parameters == ["client", "userdata", "mid", "reason_code", "properties"]

    class NotAiomqtt:
        _client = object()

    with pytest.raises(RuntimeError, match="PUBACK reason codes"):
        paho_client(NotAiomqtt())  # type: ignore[arg-type]


def message(seq: int, topic: str) -> OutboxMessage:
    return OutboxMessage(seq, f"m{seq}", MessageKind.ALERT, topic, "{}", 0.0)


def test_a_refused_topic_is_held_until_its_retry_and_the_rest_goes_on() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    held = RefusedTopics(backoff)
    a1, b1, a2 = message(1, "t/a"), message(2, "t/b"), message(3, "t/a")
    quota = Refusal(0x97, "Quota exceeded")
    held.refused("t/a", "alert m1", quota, now=100.0)
    assert held.window([a1, b1, a2], now=100.5) == [b1]  # both of t/a's messages wait
    assert held.skipped == 2
    assert held.held_back(100.5) == ["t/a"]  # the outbox read leaves it out
    assert held.next_due() == 101.0
    assert not held.is_due("t/a", 100.5)
    assert held.is_due("t/a", 101.0)
    assert held.window([a1, b1, a2], now=101.0) == [a1, b1]  # t/a's first, tried alone
    held.refused("t/a", "alert m1", quota, now=101.0)  # again: the next try is further off
    assert held.next_due() == 103.0
    # Not authorized waits for the operator: tried at the schedule's cap from the start.
    held.refused("t/c", "alert m4", Refusal(0x87, "Not authorized"), now=101.0)
    assert held.held["t/c"].permanent
    assert held.next_due() == 103.0
    assert held.window([message(4, "t/c")], now=108.0) == []
    held.delivered(["t/a"])
    assert set(held.held) == {"t/c"}
    assert dict(held.refused_total) == {"0x97 Quota exceeded": 2, "0x87 Not authorized": 1}
    # A held topic whose messages are gone (another instance sent them) is let go when due,
    # so it cannot keep the publisher waking for nothing.
    held.refused("t/s", "retained status", quota, now=108.0)
    assert held.window([b1], now=109.0, keep={"t/s"}) == [b1]
    assert set(held.held) == {"t/s"}  # a retained status is tried apart, never let go here
    held.delivered(["t/s"])
    assert not held.held
    assert held.next_due() is None
