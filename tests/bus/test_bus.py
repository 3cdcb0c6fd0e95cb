"""Alerts over a real mosquitto: delivery, properties, retained status, outage and replay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from streamguard.bus.publisher import PublisherState
from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.config.policy import ProfileConfig
from streamguard.core.status import StreamEvent, StreamEventKind, StreamState, StreamStatus
from streamguard.core.topics import Topics
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.testing.alerts import risky, segment, stream
from streamguard.testing.broker import Mosquitto
from tests.support.old_broker import OldBroker
from tests.support.subscriber import Subscriber

OUTAGE_SECONDS = 30.0
"""How long the broker is down mid-run, as the issue asks: long enough for several failed
publishes and reconnect attempts at the backoff cap before the replay."""

PROFILES = {"default": ProfileConfig(cooldown_seconds=0, incident_quiet_seconds=3600)}


def bus(port: int, prefix: str, **changes: object) -> MqttConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "topic_prefix": prefix,
        "timeout": 2.0,
        "reconnect": BackoffConfig(initial=0.1, maximum=0.5),
        **changes,
    }
    return MqttConfig.model_validate(values)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def emit_alerts(alerting: Alerting, first: int, count: int) -> list[Alert]:
    config = stream("s#1", "room 1")
    alerts: list[Alert] = []
    for seq in range(first, first + count):
        seg = segment(config.id, seq)
        alerts += await Outcomes(alerting.profiles, alerting).handle(config, seg, risky(seg), None)
    return alerts


async def test_subscriber_receives_alerts_status_and_events(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = unique("basic")
    topics = Topics(prefix)
    filters = [f"{prefix}/v1/#"]
    v5 = aiomqtt.ProtocolVersion.V5
    async with (
        Subscriber(mosquitto.port, filters, unique("c"), protocol=v5) as sub,
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(mosquitto.port, prefix, message_expiry_seconds=600), db, "i-1") as sink,
    ):
        async with Alerting(PROFILES, sink, instance_id="i-1") as alerting:
            sent = await emit_alerts(alerting, 0, 3)
            now = datetime.now(UTC)
            await sink.status(StreamStatus("s#1", "room 1", StreamState.SILENT, now, "no audio"))
            await sink.event(StreamEvent("s#1", "room 1", StreamEventKind.DOWN, now, "EOF"))
            alert_topic = topics.alerts("room 1")
            got = await sub.wait_until(
                lambda r: (
                    len([m for m in r if m.topic == alert_topic]) >= 3
                    and any(m.topic.endswith("/status") for m in r)
                    and any("/events/" in m.topic for m in r)
                )
            )
        assert sink.health().ok
        assert sink.publisher.protocol == "5"
    alerts = [m for m in got if m.topic == alert_topic]
    assert alert_topic == f"{prefix}/v1/alerts/room%201"
    assert [m.json["alert_id"] for m in alerts[:3]] == [a.alert_id for a in sent]
    first = alerts[0]
    assert first.user_properties["message_id"] == sent[0].alert_id
    assert first.json["published_at"] is not None
    assert first.json["stale"] is False
    (status,) = [m for m in got if m.topic == topics.stream_status("s#1")]
    assert status.json["state"] == "silent"
    assert status.json["last_error"] == "no audio"
    (event,) = [m for m in got if m.topic == topics.stream_events("s#1")]
    assert event.json["kind"] == "down"
    online = [m for m in got if m.topic == topics.instance("i-1")]
    assert online[0].json["state"] == "online"

    # A consumer arriving later still finds the retained status and instance availability.
    late_filters = [f"{prefix}/v1/streams/+/status", f"{prefix}/v1/instances/+"]
    async with Subscriber(mosquitto.port, late_filters, unique("late")) as late:
        retained = await late.wait_until(lambda r: len(r) >= 2)
    by_topic = {m.topic: m for m in retained}
    assert by_topic[topics.stream_status("s#1")].retain
    assert by_topic[topics.stream_status("s#1")].json["state"] == "silent"
    assert by_topic[topics.instance("i-1")].json["state"] == "offline"  # clean shutdown


async def test_mqtt_3_1_1_when_configured(mosquitto: Mosquitto, tmp_path: Path) -> None:
    prefix = unique("v311")
    async with (
        Subscriber(mosquitto.port, [f"{prefix}/v1/alerts/+"], unique("c")) as sub,
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(mosquitto.port, prefix, protocol="3.1.1"), db, "i-1") as sink,
        Alerting(PROFILES, sink, instance_id="i-1") as alerting,
    ):
        (alert,) = await emit_alerts(alerting, 0, 1)
        (got,) = await sub.wait_until(lambda r: len(r) >= 1)
        assert sink.publisher.protocol == "3.1.1"
    assert got.json["alert_id"] == alert.alert_id
    assert got.user_properties == {}


async def test_falls_back_to_3_1_1_when_the_broker_refuses_5(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = unique("fallback")
    async with (
        OldBroker(mosquitto.port) as old,
        Subscriber(mosquitto.port, [f"{prefix}/v1/alerts/+"], unique("c")) as sub,
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(old.port, prefix), db, "i-1") as sink,
        Alerting(PROFILES, sink, instance_id="i-1") as alerting,
    ):
        (alert,) = await emit_alerts(alerting, 0, 1)
        (got,) = await sub.wait_until(lambda r: len(r) >= 1)
        assert sink.publisher.protocol == "3.1.1"
        assert old.refused_v5 == 1
    assert got.json["alert_id"] == alert.alert_id


async def test_broker_outage_loses_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    prefix = unique("outage")
    config = bus(mosquitto.port, prefix, stale_after_seconds=OUTAGE_SECONDS / 2)
    async with (
        Subscriber(mosquitto.port, [f"{prefix}/v1/alerts/+"], unique("c")) as sub,
        Database(tmp_path / "state.db") as db,
        MqttAlerts(config, db, "i-1") as sink,
    ):
        async with Alerting(PROFILES, sink, instance_id="i-1") as alerting:
            before = await emit_alerts(alerting, 0, 10)
            await sub.wait_until(lambda r: len(r) >= 10)
            mosquitto.stop()
            try:
                during = await emit_alerts(alerting, 10, 10)
                # Status set while the bus is away is published once it is back.
                await sink.status(
                    StreamStatus("s#1", "room 1", StreamState.RECONNECTING, datetime.now(UTC), "x")
                )
                async with asyncio.timeout(30):
                    await sink.publisher.wait_state(PublisherState.RECONNECTING)
                health = sink.health()
                assert not health.ok
                assert health.backlog >= 10
                assert health.last_error
                await asyncio.sleep(OUTAGE_SECONDS)
            finally:
                mosquitto.start()
            after = await emit_alerts(alerting, 20, 10)
        sent = [a.alert_id for a in before + during + after]
        ended = len(sent) + 1  # the shutdown closes the incident with an end alert
        got = await sub.wait_until(lambda r: len({m.json["alert_id"] for m in r}) >= ended)
        async with asyncio.timeout(30):
            await sink.outbox.wait_empty()  # every PUBACK came back
    ids = [m.json["alert_id"] for m in got]
    first_seen = list(dict.fromkeys(ids))
    assert first_seen[: len(sent)] == sent  # every alert, in order
    assert len(first_seen) == ended  # duplicates only ever repeat an id
    status_topic = Topics(prefix).stream_status("s#1")
    async with Subscriber(mosquitto.port, [status_topic], unique("late")) as late:
        (status,) = await late.wait_until(lambda r: len(r) >= 1)
    assert (status.retain, status.json["state"]) == (True, "reconnecting")
    by_id = {m.json["alert_id"]: m.json for m in got}
    assert by_id[during[0].alert_id]["stale"] is True  # waited out the outage
    assert by_id[during[0].alert_id]["latency_seconds"] >= OUTAGE_SECONDS / 2
