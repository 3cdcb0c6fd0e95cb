"""Alert delivery figures against a real mosquitto started here.

    .venv/bin/python -m bench.alerts [--burst 5000] [--rate 100] [--seconds 20] [--backlog 10000]
                                     [--broker-nodelay]

1. throughput: ``--burst`` alerts written to the outbox as fast as possible, until the last
   PUBACK;
2. latency: alerts at ``--rate`` per second for ``--seconds``, each timed from the verdict
   (``Alerting.handle`` called) to its PUBACK: p50, p99, max;
3. replay: ``--backlog`` alerts queued while the broker is down, then the time from the
   broker's restart to the last PUBACK.

``--broker-nodelay`` starts mosquitto with ``set_tcp_nodelay true``: without it the broker's
PUBACKs wait on Nagle's algorithm, which caps a QoS 1 publisher at a few hundred a second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.config.policy import ProfileConfig
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.outbox import OutboxMessage
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from streamguard.testing.broker import Mosquitto

PROFILES = {"default": ProfileConfig(cooldown_seconds=0, incident_quiet_seconds=3600)}


class Acks:
    """PUBACK times by message id, from the publisher's ``on_acked`` hook."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = asyncio.Event()

    def __call__(self, messages: Sequence[OutboxMessage]) -> None:
        now = time.perf_counter()
        for message in messages:
            self.at.setdefault(message.message_id, now)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.at) < count:
            self.changed.clear()
            await self.changed.wait()


async def make_alerts(count: int, stream_id: str) -> list[Alert]:
    """``count`` distinct update alerts of one incident, made by the real pipeline."""
    sink = RecordingSink()
    config = stream(stream_id, "room-1")
    async with Alerting(PROFILES, sink, instance_id="bench") as alerting:
        for seq in range(count):
            seg = segment(stream_id, seq)
            await Outcomes(alerting.profiles, alerting).handle(config, seg, risky(seg), None)
    return sink.alerts[:count]


def config(port: int) -> MqttConfig:
    return MqttConfig(
        host="127.0.0.1",
        port=port,
        topic_prefix="bench",
        timeout=10,
        reconnect=BackoffConfig(initial=0.2, maximum=1.0),
        shutdown_drain_seconds=30,
    )


async def throughput(broker: Mosquitto, workdir: Path, count: int) -> None:
    alerts = await make_alerts(count, "burst")
    acks = Acks()
    async with (
        Database(workdir / "burst.db") as db,
        MqttAlerts(config(broker.port), db, "bench", on_acked=acks) as sink,
    ):
        start = time.perf_counter()
        for alert in alerts:
            await sink.emit(alert)
        written = time.perf_counter() - start
        await acks.wait_for(count)
        elapsed = time.perf_counter() - start
    print(
        f"throughput: {count} alerts written to the outbox in {written:.2f} s and all"
        f" PUBACKed in {elapsed:.2f} s = {count / elapsed:,.0f} alerts/s"
    )


async def latency(broker: Mosquitto, workdir: Path, rate: float, seconds: float) -> None:
    acks = Acks()
    started: dict[str, float] = {}
    config_ = stream("paced", "room-1")
    total = int(rate * seconds)
    async with (
        Database(workdir / "paced.db") as db,
        MqttAlerts(config(broker.port), db, "bench", on_acked=acks) as sink,
        Alerting(PROFILES, sink, instance_id="bench") as alerting,
    ):
        begin = time.perf_counter()
        for seq in range(total):
            delay = begin + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            seg = segment("paced", seq)
            verdict = risky(seg)
            at = time.perf_counter()
            for alert in await Outcomes(alerting.profiles, alerting).handle(
                config_, seg, verdict, None
            ):
                started[alert.alert_id] = at
        await acks.wait_for(len(started))
    latencies = sorted((acks.at[i] - t) * 1000 for i, t in started.items())
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"latency at {rate:g} alerts/s for {seconds:g} s ({len(latencies)} alerts),"
        f" verdict to PUBACK: p50 {statistics.median(latencies):.1f} ms,"
        f" p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms"
    )


async def replay(broker: Mosquitto, workdir: Path, count: int) -> None:
    alerts = await make_alerts(count, "backlog")
    acks = Acks()
    broker.stop()
    try:
        async with (
            Database(workdir / "backlog.db") as db,
            MqttAlerts(config(broker.port), db, "bench", on_acked=acks) as sink,
        ):
            for alert in alerts:
                await sink.emit(alert)
            depth, age = sink.outbox.depth, sink.outbox.oldest_age()
            health = sink.health()
            start = time.perf_counter()
            broker.start()
            await acks.wait_for(count)
            elapsed = time.perf_counter() - start
    finally:
        broker.start()
    print(
        f"replay: backlog of {depth} (oldest {age:.1f} s, health ok={health.ok}: "
        f"{health.reason}) delivered {elapsed:.2f} s after the broker came back"
        f" = {count / elapsed:,.0f} alerts/s (includes the reconnect backoff)"
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        workdir = Path(tmp)
        (workdir / "broker").mkdir()
        broker = Mosquitto(workdir / "broker")
        if args.broker_nodelay:
            text = broker.config.read_text(encoding="utf-8")
            broker.config.write_text(text + "set_tcp_nodelay true\n", encoding="utf-8")
        print(f"mosquitto set_tcp_nodelay {'true' if args.broker_nodelay else 'false (default)'}")
        broker.start()
        try:
            await throughput(broker, workdir, args.burst)
            await latency(broker, workdir, args.rate, args.seconds)
            await replay(broker, workdir, args.backlog)
        finally:
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--broker-nodelay", action="store_true")
    asyncio.run(main(parser.parse_args()))
