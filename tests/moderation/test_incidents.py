"""Incidents: new/update/end, cooldown, the quiet timer ending an incident of a dead stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.status import StreamEventKind
from streamguard.core.verdict import Outcome
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.incidents import IncidentEvent, IncidentTracker, Observation
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.policy import decide
from streamguard.testing.alerts import RecordingSink, risky, segment, stream

PROFILE = ProfileConfig(cooldown_seconds=60, incident_quiet_seconds=120)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def observe(
    tracker: IncidentTracker, config: StreamConfig, seq: int, score: int = 95, label: str = "Abuse"
) -> IncidentEvent | None:
    seg = segment(config.id, seq)
    verdict = risky(seg, label=label, score=score)
    decision = decide(PROFILE, config, verdict)
    observation = Observation(config, "default", "default", seg, verdict, decision, None)
    _, event = tracker.observe(
        observation,
        quiet_seconds=PROFILE.incident_quiet_seconds,
        cooldown_seconds=PROFILE.cooldown_seconds,
    )
    return event


def test_consecutive_segments_of_a_room_and_label_form_one_incident() -> None:
    clock = Clock()
    tracker = IncidentTracker(clock)
    room = stream()
    assert observe(tracker, room, 0) is IncidentEvent.NEW
    clock.now += 15
    assert observe(tracker, room, 1) is None  # within the cooldown: counted, not alerted
    clock.now += 60
    assert observe(tracker, room, 2) is IncidentEvent.UPDATE
    assert observe(tracker, room, 3, label="Porn") is IncidentEvent.NEW  # another label
    (incident,) = [i for i in tracker.open if i.label == "Abuse"]
    assert incident.segments == 3
    assert incident.latest.segment.seq == 2

    clock.now += 119
    assert tracker.expire() == []
    clock.now += 1
    ended = tracker.expire()
    assert sorted(i.label for i in ended) == ["Abuse", "Porn"]
    assert tracker.next_deadline() is None
    assert observe(tracker, room, 9) is IncidentEvent.NEW  # a later one is a new incident


def test_a_rise_in_risk_alerts_within_the_cooldown() -> None:
    clock = Clock()
    tracker = IncidentTracker(clock)
    room = stream()
    assert observe(tracker, room, 0, score=70) is IncidentEvent.NEW  # medium
    clock.now += 1
    assert observe(tracker, room, 1, score=95) is IncidentEvent.UPDATE  # high
    (incident,) = tracker.open
    assert incident.peak.value == "high"


def test_incident_ids_are_stable_across_runs() -> None:
    ids = []
    for _ in range(2):
        tracker = IncidentTracker(Clock())
        observe(tracker, stream(), 4)
        ids.append(tracker.open[0].id)
    assert ids[0] == ids[1]
    other = IncidentTracker(Clock())
    observe(other, stream(room="room-2"), 4)
    assert other.open[0].id != ids[0]


async def test_quiet_timer_ends_the_incident_of_a_stream_that_died(tmp_path: Path) -> None:
    sink = RecordingSink()
    profiles = {"default": ProfileConfig(incident_quiet_seconds=0.2, cooldown_seconds=0)}
    store = EvidenceStore(tmp_path / "evidence", keep_seconds=3600, max_bytes=10**9)
    config = stream(team="blue")
    async with Alerting(profiles, sink, instance_id="i1", evidence=store) as alerting:
        for seq in range(2):
            seg = segment(config.id, seq)
            clip = tmp_path / f"{seg.id}.mp3"
            clip.write_bytes(b"clip %d" % seq)
            await Outcomes(alerting.profiles, alerting).handle(config, seg, risky(seg), clip)
        # The stream dies here: no more segments. The timer alone must end the incident.
        async with asyncio.timeout(10):
            while len(sink.alerts) < 3:
                sink.changed.clear()
                await sink.changed.wait()
    events = [a.payload["incident"]["event"] for a in sink.alerts]
    assert events == ["new", "update", "end"]
    assert len({a.payload["incident"]["id"] for a in sink.alerts}) == 1
    end = sink.alerts[-1].payload
    assert end["incident"]["segments"] == 2
    assert end["segment"]["seq"] == 1
    assert end["stream"]["metadata"] == {"team": "blue"}
    assert end["evidence"]["clip_path"].endswith(f"{segment(config.id, 1).id}.mp3")


async def test_open_incidents_end_on_shutdown() -> None:
    sink = RecordingSink()
    profiles = {"default": ProfileConfig(incident_quiet_seconds=3600)}
    async with Alerting(profiles, sink, instance_id="i1") as alerting:
        seg = segment()
        await Outcomes(alerting.profiles, alerting).handle(stream(), seg, risky(seg), None)
    assert [a.payload["incident"]["event"] for a in sink.alerts] == ["new", "end"]


async def test_failed_and_skipped_segments_are_health_events_not_alerts() -> None:
    sink = RecordingSink()
    async with Alerting({"default": ProfileConfig()}, sink, instance_id="i1") as alerting:
        for seq, outcome in enumerate((Outcome.FAILED, Outcome.SKIPPED_OVERLOADED)):
            seg = segment(seq=seq)
            verdict = risky(seg, label="Custom", outcome=outcome, reason="engine down")
            assert (
                await Outcomes(alerting.profiles, alerting).handle(stream(), seg, verdict, None)
                == []
            )
    assert sink.alerts == []
    assert [e.kind for e in sink.events] == [
        StreamEventKind.SEGMENT_FAILED,
        StreamEventKind.SEGMENT_SKIPPED,
    ]
    assert sink.events[0].detail == "engine down"
