"""The alert JSON (schema, stable ids, stale stamp), topics, and evidence retention."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streamguard.config.policy import ProfileConfig
from streamguard.core.topics import Topics, topic_level
from streamguard.moderation.alert import Alert, alert_schema, stamp_published
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.outcomes import Outcomes
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.support.alerts import keyword

VALIDATOR = jsonschema.Draft202012Validator(
    alert_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def check(alert: dict[str, Any]) -> None:
    VALIDATOR.validate(alert)
    for moment in (alert["detected_at"], alert["segment"]["started_at"], alert["published_at"]):
        if moment is not None:
            assert datetime.fromisoformat(moment).utcoffset() == timedelta(0)


async def produce(tmp_path: Path, name: str) -> list[Alert]:
    """A new, update and end alert with evidence, as one run of the pipeline makes them."""
    sink = RecordingSink()
    store = EvidenceStore(
        tmp_path / name, keep_seconds=3600, max_bytes=10**9, base_url="https://ev.example/clips"
    )
    profiles = {"default": ProfileConfig(cooldown_seconds=0)}
    config = stream("s#1", "room/1", customer="acme")
    async with Alerting(profiles, sink, instance_id="i1", evidence=store) as alerting:
        for seq in range(2):
            seg = segment(config.id, seq)
            clip = tmp_path / f"{name}-{seq}.mp3"
            clip.write_bytes(b"audio %d" % seq)
            verdict = risky(seg, keywords=(keyword("idiot"),), text="x" * 500 + " idiot")
            await Outcomes(alerting.profiles, alerting).handle(config, seg, verdict, clip)
    return sink.alerts


async def test_alerts_match_the_schema_and_ids_are_stable(tmp_path: Path) -> None:
    first = await produce(tmp_path, "run1")
    again = await produce(tmp_path, "run2")
    assert [a.payload["incident"]["event"] for a in first] == ["new", "update", "end"]
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert len({a.alert_id for a in first}) == 3
    for alert in first:
        check(alert.to_json())
        check(stamp_published(alert.to_json(), datetime.now(UTC), 300))
    new = first[0].payload
    assert new["stream"] == {
        "id": "s#1",
        "room_id": "room/1",
        "profile": "default",
        "biz_type": "default",
        "metadata": {"customer": "acme"},
    }
    assert new["risk"]["level"] == "high"
    assert new["keywords"][0]["keyword"] == "idiot"
    assert len(new["transcript_excerpt"]) <= 282
    assert new["engine"]["task_id"] == f"task-{segment('s#1', 0).id}"
    evidence = new["evidence"]
    assert sha256_of(evidence["clip_path"]) == evidence["sha256"]
    assert evidence["clip_url"].startswith("https://ev.example/clips/s%231/")
    assert read_json(evidence["record_path"])["verdict"]["text"].endswith(" idiot")


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_json(path: str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def test_stamp_marks_late_alerts_stale() -> None:
    detected = datetime(2026, 1, 1, tzinfo=UTC)
    payload = {"detected_at": detected.isoformat(), "published_at": None}
    fresh = stamp_published(payload, detected + timedelta(seconds=10), stale_after=60)
    late = stamp_published(payload, detected + timedelta(seconds=61), stale_after=60)
    assert (fresh["stale"], fresh["latency_seconds"]) == (False, 10)
    assert (late["stale"], late["latency_seconds"]) == (True, 61)


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        ("room-1", "room-1"),
        ("a#b", "a%23b"),
        ("a+b", "a%2Bb"),
        ("a/b", "a%2Fb"),
        ("$SYS", "%24SYS"),
        ("a b", "a%20b"),
        ("100%", "100%25"),
        ("", "%"),
        ("é", "%C3%A9"),
    ],
)
def test_ids_become_one_safe_topic_level(raw: str, level: str) -> None:
    assert topic_level(raw) == level
    assert Topics("sg").alerts(raw) == f"sg/v1/alerts/{level}"


def test_topic_names() -> None:
    topics = Topics("site/a")
    assert topics.stream_status("s1") == "site/a/v1/streams/s1/status"
    assert topics.stream_events("s1") == "site/a/v1/events/s1"
    assert topics.instance("i-1") == "site/a/v1/instances/i-1"
    assert topics.all_alerts() == "site/a/v1/alerts/+"


async def test_evidence_retention_by_age_and_disk_cap(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = EvidenceStore(tmp_path / "ev", keep_seconds=100, max_bytes=25_000, clock=lambda: now[0])
    kept = []
    for seq in range(3):
        seg = segment(seq=seq)
        clip = tmp_path / f"{seq}.mp3"
        clip.write_bytes(bytes(10_000))
        evidence = await store.keep(seg, risky(seg), clip)
        age = now[0] - 10 * (3 - seq)
        os.utime(evidence.record_path, (age, age))
        kept.append(evidence)
        assert not clip.exists()  # moved into the store
    # Keeping the third (just kept, so spared) went over 25 kB: the oldest went first.
    assert [e.clip_path.exists() for e in kept] == [False, True, True]
    assert not kept[0].record_path.exists()
    # /metrics' evidence bytes: what retention left, and the same measured from scratch.
    on_disk = sum(p.stat().st_size for e in kept[1:] for p in (e.clip_path, e.record_path))
    assert store.disk_bytes == on_disk
    assert EvidenceStore(tmp_path / "ev", keep_seconds=1, max_bytes=1).measure() == on_disk
    assert await store.prune() == 0
    now[0] += 1000  # everything is now older than keep_seconds
    assert await store.prune() == 2
    assert store.disk_bytes == 0
    assert not any(e.clip_path.exists() or e.record_path.exists() for e in kept)


async def test_clips_of_safe_segments_are_deleted(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "ev", keep_seconds=100, max_bytes=10**6)
    profiles = {"default": ProfileConfig()}
    async with Alerting(profiles, RecordingSink(), instance_id="i", evidence=store) as alerting:
        seg = segment()
        clip = tmp_path / "safe.mp3"
        clip.write_bytes(b"fine")
        safe = risky(seg, label="Normal", score=0)
        assert await Outcomes(alerting.profiles, alerting).handle(stream(), seg, safe, clip) == []
    assert not clip.exists()
    assert not (tmp_path / "ev").exists()
