"""A full disk under the running daemon: it degrades, keeps judging, and loses nothing.

The daemon runs as a subprocess with its state directory on a small tmpfs (mounted here:
the test needs root, and is skipped with the reason where mount is refused), a real
mosquitto and a live room broadcast by ``IcecastServer``, judged by the local engine. The
test fills the tmpfs to ENOSPC while the room talks, sees ``/readyz`` false, the spool's
depth in ``/metrics``, ``POST /v1/streams`` answered 503; frees it, and then finds every
segment's result written, every alert delivered (by ``alert_id``) in its incident's order,
the storage events published, nothing lost, and the daemon still running until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import numpy as np

from streamguard.config.policy import ProfileConfig
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.status import StreamEvent, StreamStatus
from streamguard.demo.samples import room
from streamguard.ingest.encoder import encode_pcm
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.outcomes import Outcomes
from streamguard.testing.alerts import risky, segment, stream
from streamguard.testing.broker import Mosquitto
from streamguard.testing.media_servers import IcecastServer
from tests.app.test_daemon import FAST_INGEST, wait_for
from tests.state.small_disk import SmallDisk, small_disk
from tests.support.daemon import DaemonProcess
from tests.support.subscriber import Received, Subscriber

# Every alerting segment alerts (no cooldown), and each abusive turn of the room is an
# incident of its own that ends a few seconds later: many alerts, of several incidents.
PROFILE = """
[profiles.default]
cooldown_seconds = 0
incident_quiet_seconds = 3
"""
REPEATS = 2  # the sample room twice over: an abusive turn every 34 s of audio
PACE = 1.0  # real time: a live source is never read ahead of the wall clock
FULL_SECONDS = 20.0  # at least this long full: 20 s of the room, more than one segment


def metric(daemon: DaemonProcess, sample: str) -> float:
    """The value of one sample of ``/metrics``, named with its labels (0 when absent)."""
    _, text = daemon.request("GET", "/metrics", token=None)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def storage_ready(daemon: DaemonProcess) -> bool | None:
    status, body = daemon.request("GET", "/readyz", token=None)
    if status not in (200, 503):
        return None
    return bool(body["checks"]["storage"]["ok"])


def results_of(daemon: DaemonProcess) -> list[sqlite3.Row]:
    with sqlite3.connect(daemon.workdir / "state" / "streamguard.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM results ORDER BY seq").fetchall()


def long_room(path: Path) -> tuple[bytes, float]:
    encode_pcm(np.tile(room(), REPEATS), path, "mp3", 64_000)
    with av.open(str(path)) as container:
        assert container.duration is not None
        return path.read_bytes(), container.duration / 1_000_000


async def test_a_full_disk_degrades_and_everything_is_written_when_it_returns(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    media, seconds = long_room(tmp_path / "long-room.mp3")
    workdir = tmp_path / "daemon"
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "disk"\n'
    with small_disk(workdir / "state", "16m") as disk:
        daemon = DaemonProcess(workdir, FAST_INGEST + PROFILE + mqtt)
        try:
            async with Subscriber(mosquitto.port, ["disk/v1/#"], "test-full-disk") as consumer:
                await asyncio.to_thread(daemon.start)
                async with IcecastServer(media, seconds / PACE) as server:
                    body = {"id": "loud", "url": server.url, "room": "loud-room"}
                    status, reply = await asyncio.to_thread(
                        daemon.request, "POST", "/v1/streams", body
                    )
                    assert status == 201, reply
                    window = await _fill_and_free(daemon, disk)
                    # The rest of the broadcast, and time to judge its last segments.
                    assert server.started_at is not None
                    left = server.started_at + seconds / PACE - time.monotonic()
                    await asyncio.sleep(max(0.0, left) + 5)
                assert daemon.process is not None
                assert daemon.process.poll() is None  # still running
                daemon.signal(signal.SIGTERM)
                assert await asyncio.to_thread(daemon.wait) == 0
                rows = results_of(daemon)
                alerting = {r["segment_id"]: r for r in rows if r["risk"] in ("medium", "high")}
                received = await consumer.wait_until(lambda got: _delivered(got, alerting), 60)
        finally:
            daemon.close()
    _check_results(rows, seconds)
    _check_alerts(received, alerting, window)
    _check_events(received)


async def _fill_and_free(daemon: DaemonProcess, disk: SmallDisk) -> tuple[datetime, datetime]:
    """Fill the disk once the room is being judged, hold it full until a risky segment was
    heard in the meantime, then free it; return when it was full (UTC)."""
    await wait_for(lambda: len(results_of(daemon)) >= 1, 90, "the first result")
    full_at = datetime.now().astimezone()
    await asyncio.to_thread(disk.fill)
    await wait_for(lambda: storage_ready(daemon) is False, 60, "/readyz: storage false")
    hits = await asyncio.to_thread(metric, daemon, "streamguard_local_engine_hits_total")
    status, body = await asyncio.to_thread(daemon.request, "GET", "/readyz", token=None)
    assert status == 503, body
    assert "wait in memory" in body["checks"]["storage"]["detail"]
    status, reply = await asyncio.to_thread(
        daemon.request, "POST", "/v1/streams", {"id": "more", "url": "http://127.0.0.1:9/x"}
    )
    assert status == 503, reply
    assert reply["error"]["code"] == "storage_unavailable"

    def risky_heard_since() -> bool:
        return metric(daemon, "streamguard_local_engine_hits_total") > hits

    # Long enough for segments, a risky one among them, to be judged while it is full.
    await asyncio.sleep(FULL_SECONDS)
    await wait_for(risky_heard_since, 120, "a risky segment judged while the disk is full")
    await asyncio.sleep(3)  # its alert is raised just after its verdict
    assert await asyncio.to_thread(metric, daemon, "streamguard_spool_depth") > 0
    assert daemon.process is not None
    assert daemon.process.poll() is None
    freed_at = datetime.now().astimezone()
    await asyncio.to_thread(disk.free)
    await wait_for(lambda: storage_ready(daemon) is True, 60, "/readyz: storage true again")
    assert await asyncio.to_thread(metric, daemon, "streamguard_spool_depth") == 0
    _, text = await asyncio.to_thread(daemon.request, "GET", "/metrics", token=None)
    lost = [line for line in text.splitlines() if line.startswith("streamguard_spool_lost_total")]
    assert lost, text
    assert all(line.endswith(" 0.0") for line in lost), lost
    return full_at, freed_at


def _alerts(received: list[Received]) -> list[Received]:
    return [m for m in received if "/alerts/" in m.topic]


def _delivered(received: list[Received], alerting: dict[str, Any]) -> bool:
    """Every alerting segment has its alert, and every incident its end."""
    alerts = _alerts(received)
    segments = {m.json["segment"]["id"] for m in alerts if m.json["incident"]["event"] != "end"}
    incidents = {m.json["incident"]["id"] for m in alerts}
    ended = {m.json["incident"]["id"] for m in alerts if m.json["incident"]["event"] == "end"}
    return set(alerting) <= segments and incidents == ended


def _check_results(rows: list[sqlite3.Row], seconds: float) -> None:
    # Every segment heard has its result: seq 0..n-1 without a hole, covering the room.
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert sum(json.loads(r["segment"])["duration"] for r in rows) >= seconds - 16
    assert all(r["outcome"] in ("moderated", "no_speech") for r in rows), [
        (r["seq"], r["outcome"], r["reason"]) for r in rows
    ]


def _check_alerts(
    received: list[Received], alerting: dict[str, Any], window: tuple[datetime, datetime]
) -> None:
    alerts = _alerts(received)
    assert alerting, "the room's abusive turns made no alerting result"
    first_seen: dict[str, Received] = {}
    for message in alerts:
        first_seen.setdefault(message.json["alert_id"], message)
    # Raised while the disk was full, written and published once it was free.
    full_at, freed_at = window
    waited = [
        m
        for m in first_seen.values()
        if full_at <= datetime.fromisoformat(m.json["detected_at"]) <= freed_at
    ]
    assert waited, "no alert was raised while the disk was full"
    by_incident: dict[str, list[dict[str, Any]]] = {}
    for message in first_seen.values():
        by_incident.setdefault(message.json["incident"]["id"], []).append(message.json)
    for incident, sequence in by_incident.items():
        events = [a["incident"]["event"] for a in sequence]
        assert events[0] == "new", (incident, events)
        assert events[-1] == "end", (incident, events)
        assert set(events[1:-1]) <= {"update"}, (incident, events)
        seqs = [a["segment"]["seq"] for a in sequence[:-1]]
        assert seqs == sorted(seqs), (incident, seqs)  # nothing overtook


def _check_events(received: list[Received]) -> None:
    kinds = [m.json["kind"] for m in received if m.topic == "disk/v1/instances/test/events"]
    assert "storage_unwritable" in kinds, kinds
    assert "storage_restored" in kinds, kinds
    assert "writes_lost" not in kinds, kinds
    assert kinds.index("storage_unwritable") < kinds.index("storage_restored")


class _Sink:
    """Collects what alerting sends (the bus is not under test here)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def event(self, event: StreamEvent) -> None:
        pass

    async def status(self, status: StreamStatus) -> None:
        pass


async def test_a_clip_the_full_disk_cannot_keep_is_reported_and_the_alert_goes_out(
    tmp_path: Path,
) -> None:
    clip = tmp_path / "clip.wav"  # encoded on another file system: keeping it copies it
    clip.write_bytes(b"\0" * 200_000)
    told: list[tuple[str, str, str | None]] = []

    async def not_kept(segment: Segment | SegmentInfo, why: str, alert_id: str | None) -> None:
        told.append((segment.id, why, alert_id))

    sink = _Sink()
    with small_disk(tmp_path / "evidence", "1m") as disk:
        disk.fill()
        store = EvidenceStore(disk.path, keep_seconds=3600, max_bytes=10**9)
        profiles = {"default": ProfileConfig()}
        async with Alerting(
            profiles, sink, instance_id="i-1", evidence=store, on_evidence_not_kept=not_kept
        ) as alerting:
            seg = segment()
            (alert,) = await Outcomes(profiles, alerting).handle(stream(), seg, risky(seg), clip)
        left = sorted(p.name for p in disk.path.rglob("*") if p.is_file())
    assert sink.alerts[0] is alert
    assert alert.payload["evidence"] is None
    assert told == [(seg.id, told[0][1], alert.alert_id)]
    assert "No space left on device" in told[0][1]
    assert alerting.evidence_not_kept == 1
    assert not clip.exists()  # nothing of it is left behind, here or there
    assert left == ["filler.bin"]
