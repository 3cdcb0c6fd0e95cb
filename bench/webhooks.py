"""Webhook figures: what the feed costs the outbox, and how fast one destination drains.

    .venv/bin/python -m bench.webhooks [--alerts 2000]

1. write cost: ``--alerts`` alerts written to the outbox with no webhook destination, then
   with one registered (the trigger copies each alert into ``webhook_feed``), in the same
   run: the ratio is the feed's cost on the write path;
2. drain: those alerts POSTed one by one, in order, signed, to a receiver on loopback that
   checks every signature: alerts per second until the last 2xx.

The machine may be shared with other work: compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from streamguard.bus.webhooks import Webhooks
from streamguard.config.ingest import BackoffConfig
from streamguard.config.webhooks import WebhookConfig
from streamguard.state.db import Database
from streamguard.state.outbox import MessageKind, Outbox
from streamguard.state.webhooks import WebhookDeliveries
from streamguard.testing.net import free_port
from streamguard.testing.webhooks import WebhookReceiver

SECRET = "bench-secret"


def alert(index: int) -> str:
    return json.dumps(
        {
            "schema_version": "1",
            "alert_id": f"alr-{index:08d}",
            "risk": {"level": "high", "label": "Abuse"},
            "detected_at": "2026-11-22T03:00:00+00:00",
            "transcript_excerpt": "x" * 280,
        }
    )


async def write(path: Path, count: int, destinations: list[str]) -> float:
    async with Database(path) as db:
        await WebhookDeliveries(db).register(destinations)
        outbox = Outbox(db)
        await outbox.open()
        started = time.perf_counter()
        for index in range(count):
            await outbox.add(MessageKind.ALERT, f"alr-{index:08d}", "t", alert(index))
        return time.perf_counter() - started


async def drain(path: Path, count: int) -> float:
    port = free_port()
    config = WebhookConfig(
        name="bench",
        url=f"http://127.0.0.1:{port}/hook",
        secret=SecretStr(SECRET),
        retry=BackoffConfig(initial=0.1, maximum=1.0),
    )
    async with (
        Database(path) as db,
        WebhookReceiver(port, SECRET.encode()) as receiver,
    ):
        await WebhookDeliveries(db).register(["bench"])
        outbox = Outbox(db)
        await outbox.open()
        for index in range(count):
            await outbox.add(MessageKind.ALERT, f"alr-{index:08d}", "t", alert(index))
        started = time.perf_counter()
        async with Webhooks([config], db):
            while len(receiver.delivered_ids()) < count:
                receiver.arrived.clear()
                await receiver.arrived.wait()
        elapsed = time.perf_counter() - started
    assert all(r.verified for r in receiver.received)
    return elapsed


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plain = await write(base / "plain.db", count, [])
        fed = await write(base / "fed.db", count, ["bench"])
        drained = await drain(base / "drain.db", count)
    print(
        f"write {count} alerts: no webhook {count / plain:,.0f}/s, one webhook {count / fed:,.0f}/s"
    )
    print(f"  feed cost on the write path: {fed / plain:.2f}x the time")
    print(
        f"drain {count} alerts to one receiver: {count / drained:,.0f} alerts/s (in order, signed)"
    )
    print("(shared machine: the ratio is the figure to compare, not the rates)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=2000)
    asyncio.run(main(parser.parse_args().alerts))
