"""A small publishing process for the crash tests: ``python -m tests.support.outbox_worker``.

``--alerts N`` judges N risky segments into alerts (outbox first), prints ``queued N`` and
then keeps running until killed; ``--drain`` sends what the outbox holds, prints
``drained`` and exits. Either way it prints ``connected`` once the bus connection is up.
Incidents journalled by a killed run are ended when the next one starts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from streamguard.bus.publisher import PublisherState
from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.config.policy import ProfileConfig
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.testing.alerts import risky, segment, stream


async def main(args: argparse.Namespace) -> None:
    config = MqttConfig(
        host="127.0.0.1",
        port=args.port,
        topic_prefix=args.prefix,
        timeout=2,
        reconnect=BackoffConfig(initial=0.1, maximum=0.5),
    )
    profiles = {"default": ProfileConfig(cooldown_seconds=0, incident_quiet_seconds=3600)}
    async with (
        Database(Path(args.db)) as db,
        MqttAlerts(config, db, args.instance) as sink,
        Alerting(profiles, sink, instance_id=args.instance, db=db) as alerting,
    ):
        for seq in range(args.alerts):
            seg = segment("s1", seq)
            await Outcomes(alerting.profiles, alerting).handle(
                stream("s1", "room-1"), seg, risky(seg), None
            )
        say(f"queued {args.alerts}")
        await sink.publisher.wait_state(PublisherState.CONNECTED)
        say("connected")
        if not args.drain:
            await asyncio.Event().wait()  # until killed
        await sink.outbox.wait_empty()
        say("drained")


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--instance", default="worker")
    parser.add_argument("--alerts", type=int, default=0)
    parser.add_argument("--drain", action="store_true")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
