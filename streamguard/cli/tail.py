"""``streamguard tail -c FILE``: subscribe to the alert bus and print alerts for a person.

One line per alert (time, risk, event, room, label and score, incident), then the transcript
excerpt, keywords and evidence indented below. ``--json`` prints the alert JSON instead.
Reconnects after a lost connection, waiting as ``mqtt.reconnect`` says; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import aiomqtt

from streamguard.bus.mqtt import mqtt_client
from streamguard.cli.common import config_or_report
from streamguard.config.bus import MqttConfig
from streamguard.core.backoff import Backoff
from streamguard.core.topics import Topics

__all__ = ["describe_alert", "describe_event", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tail", help="print alerts from the bus as they arrive")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.add_argument("--room", help="only this room's alerts (default: every room)")
    parser.add_argument("--events", action="store_true", help="also print stream health events")
    parser.add_argument("--json", action="store_true", help="print the alert JSON, one a line")
    parser.add_argument("--count", type=int, help="exit after this many alerts")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config)
    if config is None:
        return 1
    if config.mqtt is None:
        print(f"{args.config}: mqtt: no broker configured, nothing to tail", file=sys.stderr)
        return 1
    try:
        asyncio.run(_tail(config.mqtt, args, sys.stdout))
    except KeyboardInterrupt:
        return 130
    return 0


async def _tail(config: MqttConfig, args: argparse.Namespace, out: TextIO) -> None:
    topics = Topics(config.topic_prefix)
    filters = [topics.alerts(args.room) if args.room else topics.all_alerts()]
    if args.events:
        filters.append(topics.all_events())
    v311, v5 = aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5
    protocol = v311 if config.protocol == "3.1.1" else v5
    backoff = Backoff.of(config.reconnect)
    alerts_seen = 0
    failures = 0
    while True:
        try:
            async with mqtt_client(config, identifier=None, protocol=protocol) as client:
                for topic_filter in filters:
                    await client.subscribe(topic_filter, qos=1)
                print(f"listening on {', '.join(filters)}", file=sys.stderr, flush=True)
                failures = 0
                async for message in client.messages:
                    text, is_alert = _render(str(message.topic), message.payload, args.json)
                    out.write(text)
                    out.flush()
                    alerts_seen += is_alert
                    if args.count is not None and alerts_seen >= args.count:
                        return
        except aiomqtt.MqttError as exc:
            failures += 1
            delay = backoff.delay(failures)
            print(f"bus: {exc}; reconnecting in {delay:.0f} s", file=sys.stderr)
            await asyncio.sleep(delay)


def _render(topic: str, payload: Any, as_json: bool) -> tuple[str, bool]:
    """The text to print for one message, and whether it was an alert."""
    try:
        data = json.loads(payload)
        if as_json:
            return json.dumps(data, ensure_ascii=False) + "\n", "alert_id" in data
        if "alert_id" in data:
            return describe_alert(data), True
        return describe_event(data), False
    except (ValueError, TypeError, KeyError) as exc:
        # Someone else's message on our topics: show it and keep tailing.
        return f"unreadable message on {topic} ({exc!r}): {payload!r}\n", False


def describe_alert(alert: dict[str, Any]) -> str:
    """An alert as a few lines a moderator can read."""
    risk, incident, stream, segment = (
        alert["risk"],
        alert["incident"],
        alert["stream"],
        alert["segment"],
    )
    label = risk["label"] + (f"/{risk['sub_label']}" if risk["sub_label"] else "")
    lines = [
        f"{alert['detected_at'][:19].replace('T', ' ')}Z  {risk['level'].upper():<6} "
        f"{incident['event'].upper():<6} room {stream['room_id']} (stream {stream['id']})  "
        f"{label} score {risk['score']}  {risk['suggestion']}"
        + ("  [STALE]" if alert.get("stale") else ""),
        f"    incident {incident['id']} since {incident['started_at'][:19].replace('T', ' ')}Z,"
        f" {incident['segments']} segment(s), peak {incident['peak_risk']};"
        f" segment {segment['id']} at {_clock(segment['media_start'])}",
    ]
    if alert["transcript_excerpt"]:
        lines.append(f'    "{alert["transcript_excerpt"]}"')
    if alert["keywords"]:
        words = ", ".join(
            f"{k['keyword']} [{k['library_name'] or k['library_id']}]" for k in alert["keywords"]
        )
        lines.append(f"    keywords: {words}")
    evidence = alert["evidence"]
    if evidence:
        where = evidence["clip_url"] or evidence["clip_path"]
        lines.append(f"    evidence: {where} (sha256 {evidence['sha256'][:16]}…)")
    if stream["metadata"]:
        lines.append("    " + ", ".join(f"{k}={v}" for k, v in stream["metadata"].items()))
    return "\n".join(lines) + "\n"


def describe_event(event: dict[str, Any]) -> str:
    """A stream health event as one line."""
    detail = f": {event['detail']}" if event.get("detail") else ""
    return (
        f"{event['at'][:19].replace('T', ' ')}Z  EVENT  stream {event['stream_id']}"
        f" (room {event['room_id']}) {event['kind']}{detail}\n"
    )


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
