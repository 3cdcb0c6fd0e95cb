"""The daemon end to end with a webhook: a file judged by the local engine, its alerts
published on a real mosquitto and POSTed, signed, to a real receiver on loopback."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from streamguard.testing.webhooks import WebhookReceiver
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

SECRET = "daemon-webhook-secret"


@pytest.mark.slow
async def test_the_daemon_posts_its_alerts_to_a_webhook(
    mosquitto: Mosquitto, tmp_path: Path, room_mp3: Path
) -> None:
    port = free_port()
    config = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "hooked"\n'
        f'[[webhooks]]\nname = "ops"\nurl = "http://127.0.0.1:{port}/hook"\n'
        "retry = { initial = 0.2, maximum = 1.0 }\n"
        f'[[streams]]\nid = "room"\nurl = "{room_mp3}"\nsegment_seconds = 15\n'
    )
    daemon = DaemonProcess(tmp_path, config, env={"STREAMGUARD_WEBHOOK_OPS_SECRET": SECRET})
    try:
        async with WebhookReceiver(port, SECRET.encode()) as receiver:
            await asyncio.to_thread(daemon.start)
            await eventually(lambda: "new" in _events(receiver), within=240)
            _, metrics = daemon.request("GET", "/metrics", token=None)
            assert 'streamguard_webhook_delivered_total{webhook="ops"}' in metrics
            daemon.signal(signal.SIGTERM)  # ends the open incident: its `end` alert follows
            assert await asyncio.to_thread(daemon.wait) == 0
            # The `end` alert is written during shutdown: posted then if the sender is still
            # running, else kept in the feed and posted by the next start.
            await asyncio.to_thread(daemon.start)
            await eventually(lambda: "end" in _events(receiver), within=60)
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()
    assert all(r.verified for r in receiver.received)
    first = receiver.received[0].body
    assert (first["risk"]["label"], first["stream"]["room_id"]) == ("Abuse", "room")


def _events(receiver: WebhookReceiver) -> list[str]:
    return [r.body["incident"]["event"] for r in receiver.received if r.answered == 200]
