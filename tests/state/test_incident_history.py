"""The incident history: every incident raised, its segments with their whole verdicts, the
alerts sent; filtered newest first; written by alerting as alerts are raised."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from streamguard.config.policy import ProfileConfig
from streamguard.core.verdict import KeywordHit
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.incidents import IncidentQuery
from streamguard.testing.alerts import ATTACHED_AT, RecordingSink, risky, segment, stream
from tests.support.backends import Backend

PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}
TEXT = "shut up you idiot"
IDIOT = KeywordHit(
    keyword="idiot",
    library_id="lib-1",
    library_name="insults",
    label="Abuse",
    sub_label="Insult",
    score=95,
    text_start=TEXT.index("idiot"),
    text_end=TEXT.index("idiot") + 5,
)


async def test_alerting_records_incidents_segments_and_alerts(
    backend: Backend, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF....WAVE")
    evidence = EvidenceStore(tmp_path / "evidence", keep_seconds=3600, max_bytes=10**9)
    history = backend.incidents()
    sink = RecordingSink()
    alerting = Alerting(
        PROFILES, sink, instance_id="t", evidence=evidence, db=backend.db, history=history
    )
    async with alerting:
        outcomes = Outcomes(PROFILES, alerting)
        room, other = stream("s1", "room-1"), stream("s2", "room-2")
        first, second = segment("s1", 0), segment("s1", 1)
        await outcomes.handle(room, first, risky(first, text=TEXT, keywords=(IDIOT,)), clip)
        # Within the cooldown: no alert is sent, but the segment belongs to the incident.
        await outcomes.handle(room, second, risky(second), None)
        late = segment("s2", 4)
        await outcomes.handle(other, late, risky(late, label="Porn", score=70), None)
        listed = await history.query(IncidentQuery())
        assert [i["room_id"] for i in listed] == ["room-2", "room-1"]  # newest first
        assert {i["state"] for i in listed} == {"open"}
    # Leaving alerting ends the open incidents: the end alerts are recorded too.
    incidents = await history.query(IncidentQuery(room_id="room-1"))
    (incident,) = incidents
    assert incident["state"] == "ended"
    assert incident["ended_at"] is not None
    assert incident["segments"] == 2
    assert (incident["label"], incident["peak_risk"]) == ("Abuse", "high")

    found = await history.get(incident["id"])
    assert found is not None
    assert [s["segment"]["id"] for s in found["segments"]] == [first.id, second.id]
    opening = found["segments"][0]
    assert opening["verdict"]["text"] == TEXT
    assert opening["verdict"]["keywords"][0]["keyword"] == "idiot"
    assert opening["risk"]["level"] == "high"
    assert opening["evidence"]["clip_path"].endswith(f"{first.id}.wav")
    assert found["segments"][1]["evidence"] is None
    assert [a["incident"]["event"] for a in found["alerts"]] == ["new", "end"]
    assert [a["alert_id"] for a in found["alerts"]] == [
        a.alert_id for a in sink.alerts if a.payload["incident"]["id"] == incident["id"]
    ]
    kept = await history.evidence_of(first.id)
    assert kept is not None
    assert await asyncio.to_thread(Path(kept["clip_path"]).read_bytes) == b"RIFF....WAVE"
    assert await history.evidence_of(second.id) is None
    assert await history.get("inc-nope") is None


async def test_filters(backend: Backend) -> None:
    history = backend.incidents()
    alerting = Alerting(PROFILES, RecordingSink(), instance_id="t", db=backend.db, history=history)
    async with alerting:
        outcomes = Outcomes(PROFILES, alerting)
        for seq, (stream_id, room, label, score) in enumerate(
            [
                ("s1", "room-1", "Abuse", 95),
                ("s2", "room-2", "Porn", 70),
                ("s3", "room-3", "Abuse", 70),
            ]
        ):
            seg = segment(stream_id, seq)
            await outcomes.handle(
                stream(stream_id, room), seg, risky(seg, label=label, score=score), None
            )

        async def rooms(**filters: object) -> list[str]:
            found = await history.query(IncidentQuery(**filters))  # type: ignore[arg-type]
            return [i["room_id"] for i in found]

        assert await rooms() == ["room-3", "room-2", "room-1"]
        assert await rooms(label="Abuse") == ["room-3", "room-1"]
        assert await rooms(room_id="room-2") == ["room-2"]
        assert await rooms(risk="high") == ["room-1"]
        assert await rooms(min_risk="medium") == ["room-3", "room-2", "room-1"]
        second = ATTACHED_AT + timedelta(seconds=15)
        assert await rooms(since=second) == ["room-3", "room-2"]
        assert await rooms(until=second) == ["room-1"]
        assert await rooms(open_only=False) == []
        assert await rooms(limit=1) == ["room-3"]
