"""``streamguard tail`` prints alerts from the real bus for a person to read."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.policy import ProfileConfig
from streamguard.core.status import StreamEvent, StreamEventKind
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.testing.alerts import risky, segment, stream
from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from tests.support.alerts import keyword

ROOT = Path(__file__).resolve().parents[2]


async def test_tail_prints_alerts_and_events(mosquitto: Mosquitto, tmp_path: Path) -> None:
    prefix = f"tail-{uuid.uuid4().hex[:8]}"
    config_file = tmp_path / "streamguard.toml"
    config_file.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "{prefix}"\n',
        encoding="utf-8",
    )
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "streamguard", "tail", "-c", str(config_file), "--events", "--count", "1"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert tail.stderr is not None
    async with asyncio.timeout(30):
        assert (await tail.stderr.readline()).startswith(b"listening on ")

    mqtt = MqttConfig(host="127.0.0.1", port=mosquitto.port, topic_prefix=prefix)
    config = stream("s1", "room-1", customer="acme")
    seg = segment("s1", 6)
    verdict = risky(seg, keywords=(keyword("idiot"),), text="idiot, you are an idiot")
    now = datetime.now(UTC)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as stranger:
        await stranger.publish(f"{prefix}/v1/alerts/x", b"not json", qos=1)
    async with (
        Database(tmp_path / "state.db") as db,
        MqttAlerts(mqtt, db, "i-1") as sink,
        Alerting({"default": ProfileConfig()}, sink, instance_id="i-1") as alerting,
    ):
        await sink.event(StreamEvent("s1", "room-1", StreamEventKind.RESTORED, now, "back"))
        (alert,) = await Outcomes(alerting.profiles, alerting).handle(config, seg, verdict, None)
        async with asyncio.timeout(30):
            out, _ = await tail.communicate()
    assert tail.returncode == 0
    text = out.decode()
    junk, event_line, alert_line, incident_line, transcript, keywords, metadata = text.splitlines()
    assert junk.startswith(f"unreadable message on {prefix}/v1/alerts/x (JSONDecodeError(")
    assert event_line.endswith("EVENT  stream s1 (room room-1) restored: back")
    assert "HIGH   NEW    room room-1 (stream s1)  Abuse/Insult score 95  Block" in alert_line
    assert alert.payload["incident"]["id"] in incident_line
    assert "segment s1-20261122030000-00006 at 00:01:30" in incident_line
    assert transcript == '    "idiot, you are an idiot"'
    assert keywords == "    keywords: idiot [lib-default name]"
    assert metadata == "    customer=acme"


async def test_tail_without_a_broker_configured_says_so(tmp_path: Path) -> None:
    config_file = tmp_path / "streamguard.toml"
    config_file.write_text("", encoding="utf-8")
    tail = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "streamguard", "tail", "-c", str(config_file)),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, err = await tail.communicate()
    assert tail.returncode == 1
    assert b"mqtt: no broker configured" in err


async def test_tail_waits_the_configured_reconnect_backoff(tmp_path: Path) -> None:
    config_file = tmp_path / "streamguard.toml"
    config_file.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        "[mqtt.reconnect]\ninitial = 7\nmaximum = 7\njitter = 0\n",
        encoding="utf-8",
    )
    tail = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "streamguard", "tail", "-c", str(config_file)),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    assert tail.stderr is not None
    try:
        async with asyncio.timeout(30):
            line = await tail.stderr.readline()
    finally:
        tail.kill()
        await tail.wait()
    # Nobody listens on the port: refused at once, then the config's delay, not a built-in one.
    assert line.endswith(b"; reconnecting in 7 s\n")
