"""Webhooks fed from the MQTT outbox: a real aiohttp receiver on loopback, a real broker."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import SecretStr, ValidationError

from streamguard.bus.sink import MqttAlerts
from streamguard.bus.webhooks import Webhooks, sign
from streamguard.config import Config
from streamguard.config.ingest import BackoffConfig
from streamguard.config.webhooks import WebhookConfig
from streamguard.moderation.alert import Alert, alert_schema
from streamguard.moderation.alerting import Alerting
from streamguard.state.db import Database
from streamguard.state.dead_letters import DeadLetters
from streamguard.state.outbox import MessageKind, Outbox
from streamguard.state.webhooks import WebhookDeliveries
from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from streamguard.testing.webhooks import WebhookReceiver
from tests.bus.test_bus import PROFILES, bus, emit_alerts, unique
from tests.support.waiting import eventually

SECRET = "s3cret-for-tests"
OUTAGE_SECONDS = 30.0
"""How long the receiver is down, as the issue asks."""


def webhook(url: str, **changes: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "name": "ops",
        "url": url,
        "secret": SecretStr(SECRET),
        "timeout": 5.0,
        "retry": BackoffConfig(initial=0.1, maximum=2.0),
        **changes,
    }
    return WebhookConfig.model_validate(values)


def check_deliveries(receiver: WebhookReceiver, sent: list[Alert]) -> None:
    """Every alert arrived, in order, signed; a duplicate is only ever a sent alert again."""
    ids = [a.alert_id for a in sent]
    # Closing the alerting ends the open incident: its `end` alert may follow.
    ended = {r.alert_id for r in receiver.received if r.body["incident"]["event"] == "end"}
    assert all(r.verified for r in receiver.received)
    assert {r.alert_id for r in receiver.received} <= set(ids) | ended
    delivered = list(dict.fromkeys(receiver.delivered_ids()))
    assert delivered[: len(ids)] == ids  # first deliveries in outbox order
    assert set(delivered[len(ids) :]) <= ended
    for received in receiver.received:  # the alert JSON as MQTT carries it
        jsonschema.validate(received.body, alert_schema())


@pytest.mark.slow
async def test_receiver_down_for_30_s_gets_every_alert_signed_and_in_order(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    receiver = WebhookReceiver(port, SECRET.encode(), fail_next=2)
    async with (
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(mosquitto.port, unique("hooks")), db, "i-1") as sink,
        Webhooks([webhook(receiver.url)], db) as hooks,
    ):
        sink.also_wake(hooks.wake)
        async with Alerting(PROFILES, sink, instance_id="i-1") as alerting:
            sent = await emit_alerts(alerting, 0, 3)
            # The receiver is down: attempts fail and back off while more alerts come.
            await eventually(lambda: hooks.senders[0].stats.failed_attempts >= 3)
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            sent += await emit_alerts(alerting, 3, 3)
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            async with receiver:
                await eventually(lambda: len(set(receiver.delivered_ids())) == len(sent), 60)
            await sink.outbox.wait_empty()  # MQTT had them all too, from the same outbox
    check_deliveries(receiver, sent)
    assert [r.answered for r in receiver.received[:2]] == [500, 500]
    assert receiver.received[0].alert_id == receiver.received[2].alert_id  # resent as is


async def test_undelivered_alerts_are_delivered_after_a_restart(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    receiver = WebhookReceiver(port, SECRET.encode())
    prefix = unique("restart")
    async with (
        Database(tmp_path / "state.db") as db,
        MqttAlerts(bus(mosquitto.port, prefix), db, "i-1") as sink,
        Webhooks([webhook(receiver.url)], db) as hooks,
    ):
        sink.also_wake(hooks.wake)
        async with Alerting(PROFILES, sink, instance_id="i-1") as alerting:
            sent = await emit_alerts(alerting, 0, 4)
            await sink.outbox.wait_empty()  # published to MQTT and gone from its table
            await eventually(lambda: hooks.senders[0].stats.failed_attempts >= 1)
    # A new process: the alerts still wait for the webhook, and go out once it listens.
    async with (
        receiver,
        Database(tmp_path / "state.db") as db,
        Webhooks([webhook(receiver.url)], db) as hooks,
    ):
        assert await hooks.deliveries.backlog("ops") == len(sent) + 1  # and the `end`
        await eventually(lambda: len(set(receiver.delivered_ids())) == len(sent) + 1)
        await eventually(lambda: _backlog_is(hooks, 0))
    check_deliveries(receiver, sent)


async def _backlog_is(hooks: Webhooks, count: int) -> bool:
    return await hooks.deliveries.backlog("ops") == count


def alert_json(alert_id: str, label: str = "Abuse", level: str = "high") -> str:
    return json.dumps(
        {
            "schema_version": "1",
            "alert_id": alert_id,
            "risk": {"level": level, "label": label},
            "detected_at": "2026-11-22T03:00:00+00:00",
        }
    )


async def test_filters_and_destinations_are_independent(tmp_path: Path) -> None:
    async with (
        WebhookReceiver(free_port(), SECRET.encode()) as all_hooks,
        WebhookReceiver(free_port(), SECRET.encode()) as porn_only,
        Database(tmp_path / "state.db") as db,
    ):
        outbox = Outbox(db)
        await outbox.open()
        configs = [
            webhook(all_hooks.url, name="all"),
            webhook(porn_only.url, name="porn", labels=["Porn"], min_risk="high"),
        ]
        async with Webhooks(configs, db) as hooks:
            for alert_id, label, level in [
                ("a1", "Abuse", "high"),
                ("a2", "Porn", "medium"),
                ("a3", "Porn", "high"),
            ]:
                payload = alert_json(alert_id, label, level)
                await outbox.add(MessageKind.ALERT, alert_id, "t", payload)
            await outbox.add(MessageKind.EVENT, "e1", "t", "{}")  # events are not webhooks'
            hooks.wake()
            await eventually(lambda: len(all_hooks.delivered_ids()) == 3)
            await eventually(lambda: porn_only.delivered_ids() == ["a3"])
            await eventually(lambda: _feed_empty(db))
        assert all_hooks.delivered_ids() == ["a1", "a2", "a3"]
        assert hooks.stats()["porn"]["filtered"] == 2


async def _feed_empty(db: Database) -> bool:
    count = await db.run(lambda c: c.execute("SELECT COUNT(*) FROM webhook_feed").fetchone()[0])
    return bool(count == 0)


async def test_an_alert_too_old_is_dead_lettered_and_the_next_goes(tmp_path: Path) -> None:
    now = [1000.0]
    port = free_port()
    async with Database(tmp_path / "state.db") as db:
        outbox = Outbox(db, clock=lambda: now[0])
        await outbox.open()
        config = webhook(f"http://127.0.0.1:{port}/hook", dead_letter_after_seconds=60)
        async with Webhooks([config], db, clock=lambda: now[0]) as hooks:
            await outbox.add(MessageKind.ALERT, "old", "t", alert_json("old"))
            hooks.wake()
            await eventually(lambda: hooks.senders[0].stats.failed_attempts >= 1)
            now[0] += 61  # the receiver stays down past the limit
            await eventually(lambda: hooks.senders[0].stats.dead_lettered == 1)
            async with WebhookReceiver(port, SECRET.encode()) as receiver:
                await outbox.add(MessageKind.ALERT, "new", "t", alert_json("new"))
                hooks.wake()
                await eventually(lambda: receiver.delivered_ids() == ["new"])
        (letter,) = await DeadLetters(db).list()
        assert (letter.message_id, letter.topic) == ("old", "webhook:ops")
        assert "ClientConnectorError" in letter.error or "HTTP" in letter.error


async def test_alerts_past_their_age_are_not_posted_again_while_the_receiver_is_down(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    async with Database(tmp_path / "state.db") as db:
        outbox = Outbox(db, clock=lambda: now[0])
        await outbox.open()
        config = webhook(f"http://127.0.0.1:{free_port()}/hook", dead_letter_after_seconds=60)
        async with Webhooks([config], db, clock=lambda: now[0]) as hooks:
            for alert_id in ("a1", "a2", "a3"):
                await outbox.add(MessageKind.ALERT, alert_id, "t", alert_json(alert_id))
            hooks.wake()
            sender = hooks.senders[0]
            await eventually(lambda: sender.stats.failed_attempts >= 1)
            now[0] += 61  # the receiver stays down past the limit
            attempts = sender.stats.failed_attempts
            await eventually(lambda: sender.stats.dead_lettered == 3)
            # At most a POST already under way when the clock moved; none for a2 and a3.
            assert sender.stats.failed_attempts <= attempts + 1
        letters = await DeadLetters(db).list()
        assert sorted(letter.message_id for letter in letters) == ["a1", "a2", "a3"]


async def test_a_removed_destination_holds_nothing_back(tmp_path: Path) -> None:
    async with Database(tmp_path / "state.db") as db:
        outbox = Outbox(db)
        await outbox.open()
        async with Webhooks([webhook(f"http://127.0.0.1:{free_port()}/h")], db):
            await outbox.add(MessageKind.ALERT, "a1", "t", alert_json("a1"))
        assert not await _feed_empty(db)
        async with Webhooks([], db):  # the next start, without the destination
            assert await _feed_empty(db)
            await outbox.add(MessageKind.ALERT, "a2", "t", alert_json("a2"))
            assert await _feed_empty(db)  # with no destination, nothing is copied


def test_signature_and_the_documented_verification_snippet() -> None:
    body = b'{"alert_id": "alr-1"}'
    assert sign(b"k", 1700000000, body) == (
        "v1=" + hmac.new(b"k", b"1700000000." + body, "sha256").hexdigest()
    )
    docs = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text(encoding="utf-8")
    snippet = re.search(r"<!-- verify-snippet -->\s*```python\n(.*?)```", docs, re.S)
    assert snippet is not None, "docs/alerts.md lost its verification snippet"
    scope: dict[str, Any] = {}
    exec(snippet.group(1), scope)
    headers = {
        "X-Streamguard-Timestamp": "1700000000",
        "X-Streamguard-Signature": sign(b"k", 1700000000, body),
    }
    assert scope["verify"](b"k", headers, body, now=1700000010)
    assert not scope["verify"](b"other", headers, body, now=1700000010)
    assert not scope["verify"](b"k", headers, body + b" ", now=1700000010)
    assert not scope["verify"](b"k", headers, body, now=1700000000 + 3600)  # replayed late


def test_config_reads_the_secret_by_name_and_needs_mqtt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMGUARD_WEBHOOK_OPS_EAST_SECRET", "from-env")
    hook = {"name": "ops-east", "url": "https://hooks.example.com/x"}
    config = Config.model_validate({"mqtt": {"host": "127.0.0.1"}, "webhooks": [hook]})
    (loaded,) = config.webhooks
    assert loaded.secret is not None
    assert loaded.secret.get_secret_value() == "from-env"
    with pytest.raises(ValidationError, match=r"webhooks are fed from the MQTT outbox"):
        Config.model_validate({"webhooks": [hook]})
    fleet = {"url": "postgresql://sg@127.0.0.1:5432/sg"}  # fed from the shared outbox
    Config.model_validate({"mqtt": {"host": "h"}, "state": fleet, "webhooks": [hook]})
    with pytest.raises(ValidationError, match=r"\[1\]\.name 'ops-east' is used by another"):
        Config.model_validate({"mqtt": {"host": "h"}, "webhooks": [hook, hook]})
    with pytest.raises(ValidationError, match=r"must be an http:// or https:// URL"):
        Config.model_validate({"mqtt": {"host": "h"}, "webhooks": [{**hook, "url": "ftp://x/"}]})


async def test_a_clean_stop_delivers_what_waits_within_the_drain(tmp_path: Path) -> None:
    async with (
        WebhookReceiver(free_port(), SECRET.encode()) as receiver,
        Database(tmp_path / "state.db") as db,
    ):
        outbox = Outbox(db)
        await outbox.open()
        async with Webhooks([webhook(receiver.url)], db, drain_seconds=30):
            # Written just before the stop, as the `end` alerts of a shutdown are.
            for index in range(5):
                await outbox.add(MessageKind.ALERT, f"a{index}", "t", alert_json(f"a{index}"))
        assert receiver.delivered_ids() == [f"a{index}" for index in range(5)]
        async with Webhooks([webhook(f"http://127.0.0.1:{free_port()}/h")], db, drain_seconds=0.5):
            await outbox.add(MessageKind.ALERT, "late", "t", alert_json("late"))
        # The receiver was down: the stop gave up after the drain, the alert waits.
        assert await WebhookDeliveries(db).backlog("ops") == 1
