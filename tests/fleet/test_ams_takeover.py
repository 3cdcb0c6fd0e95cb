"""Two daemons in fleet mode on the AMS engine (the emulator over real HTTP), one PostgreSQL,
one mosquitto: AMS holds every task; the instance that wrote them is killed (-9) with its
tasks in flight; AMS then finishes them, and the other instance settles them: every segment
has exactly one result, each risky one raised one alert, and each alert reached a real MQTT
subscriber by ``alert_id``.

The instances sit behind a load balancer (``tests.support.balancer``) for what AMS calls:
clip fetches and callbacks go to whichever instance is up, with one clip directory and one
URL key for the fleet. Each stream is a 15-s recording of speech over the fake judge's
marker tone: one segment, which the speech gate passes and the judge blocks. Every risky
segment alerts (no cooldown), so each has its own alert."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from streamguard.core.chunk import SAMPLE_RATE
from streamguard.demo.samples import room
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.emulator.faults import Faults
from streamguard.ingest.encoder import encode_pcm
from streamguard.testing.broker import Mosquitto
from streamguard.testing.engines import ToneEngine
from streamguard.testing.net import free_port
from tests.support.ams import KEYS, SECRET_ID, SECRET_KEY
from tests.support.audio import tone
from tests.support.balancer import Balancer
from tests.support.daemon import DaemonProcess
from tests.support.fleet import query, start
from tests.support.subscriber import Subscriber
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # two daemons as processes

STREAMS = ["s0", "s1"]
ENV = {
    "TENCENTCLOUD_SECRET_ID": SECRET_ID,
    "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
    "STREAMGUARD_URL_SIGNING_KEY": "one-key-for-the-fleet",
}


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    made: list[DaemonProcess] = []
    yield made
    for daemon in made:
        daemon.close()


def marked_speech(path: Path) -> None:
    """15 s of the sample room's abusive turn over a loud 1 kHz marker tone."""
    speech = room()[15 * SAMPLE_RATE : 30 * SAMPLE_RATE].astype(np.float64)
    mixed = np.clip(speech + tone(15.0, amplitude=0.3), -32768, 32767).astype(np.int16)
    encode_pcm(mixed, path, "wav")


def config(n: int, *, emulator: str, ports: list[int], lb: str, clips: Path, **more: str) -> str:
    streams = "".join(
        f'[[streams]]\nid = "{s}"\nurl = "{more["media"]}"\nroom = "room-{s}"\n'
        f'metadata = {{ show = "show-{s}" }}\n'
        for s in STREAMS
    )
    return f"""
[engine]
type = "ams"
endpoint = "{emulator}"
delivery_listen = "127.0.0.1:{ports[n]}"
public_base_url = "{lb}"
clips_dir = "{clips}"
batch_window = 0.2
poll_interval = 0.5
poll_interval_max = 1.0
callback_grace = 0.5
[ingest]
segment_seconds = 15
[profiles.default]
cooldown_seconds = 0
[state]
url = "{more["pg_url"]}"
lease_seconds = 3
[mqtt]
host = "127.0.0.1"
port = {more["mqtt_port"]}
topic_prefix = "amsfleet"
{streams}"""


def tasks(pg_url: str) -> list[tuple[str, str, str, str]]:
    """(segment, stream, state, writer) of every tracked AMS task."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in query(pg_url, "SELECT segment_id, stream_id, state, owner FROM ams_tasks")
    ]


async def until(
    check: Callable[[], bool], within: float, pg_url: str, daemons: list[DaemonProcess]
) -> None:
    """``eventually``, saying where things stand when it times out."""
    try:
        await eventually(check, within, 0.2)
    except TimeoutError:
        alerts = query(pg_url, "SELECT segment_id, event FROM incident_alerts")
        results = query(pg_url, "SELECT segment_id, owner, suggestion FROM results")
        outbox = query(pg_url, "SELECT message_id, origin, claimed_by FROM alerts_outbox")
        logs = "\n".join(d.log()[-2500:] for d in daemons)
        raise AssertionError(
            f"tasks {tasks(pg_url)}\n{results=}\n{alerts=}\n{outbox=}\n{logs}"
        ) from None


async def test_a_killed_instances_tasks_in_flight_are_settled_by_the_other(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    media = tmp_path / "marked.wav"
    await asyncio.to_thread(marked_speech, media)
    ports = [free_port(), free_port()]
    options = EmulatorOptions(keys=KEYS, slice_seconds=15, processing_factor=0.0)
    async with (
        AmsEmulator(ToneEngine(), options, Faults(stuck_first=100)) as emulator,
        Balancer([f"http://127.0.0.1:{port}" for port in ports]) as lb,
        Subscriber(mosquitto.port, ["amsfleet/v1/alerts/#"], "test-ams-fleet") as bus,
    ):
        settings = {"media": str(media), "pg_url": pg_url, "mqtt_port": str(mosquitto.port)}

        def config_of(n: int) -> str:
            return config(
                n, emulator=emulator.url, ports=ports, lb=lb.url, clips=tmp_path / "clips",
                **settings,
            )  # fmt: skip

        await start(daemons, tmp_path, config_of, 2, env=ENV)
        # Both streams' segments are with AMS, which holds them.
        await eventually(
            lambda: (
                sorted((s, st) for _, s, st, _ in tasks(pg_url))
                == [("s0", "pending"), ("s1", "pending")]
            ),
            120,
            0.2,
        )
        writers = {writer for _, _, _, writer in tasks(pg_url)}
        victim = daemons[0] if "i0" in writers else daemons[1]
        survivor = daemons[1] if victim is daemons[0] else daemons[0]
        in_flight = {seg for seg, _, _, writer in tasks(pg_url) if writer == victim.instance}
        victim.kill()  # -9, with its tasks in flight
        emulator.faults = Faults()
        assert emulator.release_stuck() == 2  # AMS finishes them now

        def settled() -> bool:
            rows = tasks(pg_url)
            retaken = len(in_flight)  # each of the victim's streams is judged again
            return len(rows) == 2 + retaken and all(state == "done" for _, _, state, _ in rows)

        # The survivor settles the victim's tasks; it also took the victim's stream over
        # and judged it again from the start (a new segment, a new task).
        await until(settled, 120, pg_url, daemons)

        def alerted() -> list[tuple[str, str]]:
            return [
                (r[0], r[1])
                for r in query(
                    pg_url,
                    "SELECT segment_id, alert_id FROM incident_alerts"
                    " WHERE event IN ('new', 'update') ORDER BY segment_id",
                )
            ]

        def delivered() -> bool:
            # Every tracked segment alerted (a settle is recorded before its alert), and
            # every alert reached the subscriber.
            alerts, got = alerted(), {m.json.get("alert_id") for m in bus.received}
            every = {seg for seg, _, _, _ in tasks(pg_url)} <= {seg for seg, _ in alerts}
            return every and {a for _, a in alerts} <= got

        await until(delivered, 60, pg_url, daemons)
        alerts = alerted()
        survivor_log = survivor.log()

    segments = [seg for seg, _, _, _ in tasks(pg_url)]
    results = query(
        pg_url,
        "SELECT segment_id, owner, suggestion, room_id FROM results WHERE segment_id = ANY(%s)",
        (segments,),
    )
    assert sorted(r[0] for r in results) == sorted(segments)  # one result per segment
    by_segment = {r[0]: r for r in results}
    for segment_id in in_flight:
        _, owner, suggestion, room_id = by_segment[segment_id]
        assert (owner, suggestion) == (survivor.instance, "Block"), survivor_log
        assert room_id.startswith("room-s")
    # Exactly one alert per risky verdict, every one received on the bus by its alert_id.
    assert sorted(seg for seg, _ in alerts) == sorted(segments)
    assert all(r[2] == "Block" for r in results)
    received = {m.json["alert_id"]: m for m in bus.received if "alert_id" in m.json}
    for segment_id, alert_id in alerts:
        message = received[alert_id]
        assert message.json["segment"]["id"] == segment_id
        stream_id = message.json["stream"]["id"]
        assert message.topic == f"amsfleet/v1/alerts/room-{stream_id}"
        assert message.json["stream"]["metadata"] == {"show": f"show-{stream_id}"}
    for segment_id in in_flight:  # polled or called back, never sent to AMS again
        assert emulator.stats.tasks_by_data_id[segment_id] == 1
