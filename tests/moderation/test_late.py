"""Late verdicts (AMS tasks settled after a restart): recorded, and alerted on like any other,
in the room the stream was last attached to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from streamguard.config.policy import ProfileConfig
from streamguard.core.segment import Segment
from streamguard.core.status import StreamEventKind
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.moderation.alert import stamp_published
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.late import LateVerdicts
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.profiles import Profiles
from streamguard.state.attached import AttachedStreams
from streamguard.state.db import Database
from streamguard.state.results import Results
from streamguard.testing.alerts import RecordingSink, risky, segment, stream

PROFILES = {
    "default": ProfileConfig(cooldown_seconds=0, incident_quiet_seconds=3600),
    "strict": ProfileConfig(
        biz_type="strict_rooms", cooldown_seconds=0, incident_quiet_seconds=3600
    ),
}


@dataclass
class Late:
    handler: LateVerdicts
    attached: AttachedStreams
    sink: RecordingSink
    db: Database


@pytest.fixture
async def late(tmp_path: Path) -> AsyncIterator[Late]:
    sink = RecordingSink()
    async with (
        Database(tmp_path / "state.db") as db,
        Alerting(PROFILES, sink, instance_id="i-1") as alerting,
    ):
        results = Results(db)
        attached = AttachedStreams(db)
        profiles = Profiles(PROFILES)
        handler = LateVerdicts(
            attached=attached,
            profiles=profiles,
            results=results,
            outcomes=Outcomes(profiles, alerting, results),
        )
        await attached.remember([stream("s1", room="room-1", profile="strict")])
        yield Late(handler, attached, sink, db)


def _failed(seg: Segment) -> Verdict:
    return Verdict(
        segment_id=seg.id,
        outcome=Outcome.FAILED,
        engine="ams",
        engine_version="test",
        reason="shutdown: AMS verdict not in before the deadline",
    )


async def _row(db: Database, segment_id: str) -> tuple[str, str, str] | None:
    row = await db.run(
        lambda conn: conn.execute(
            "SELECT outcome, risk, room_id FROM results WHERE segment_id = ?", (segment_id,)
        ).fetchone()
    )
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


async def test_a_late_risky_verdict_replaces_the_failed_row_and_alerts(late: Late) -> None:
    seg = segment("s1", seq=3)
    results = Results(late.db)
    await results.record("room-1", seg, _failed(seg), "none")  # what shutdown recorded
    await late.handler(risky(seg), seg.info())
    assert await _row(late.db, seg.id) == ("moderated", "high", "room-1")
    (alert,) = late.sink.alerts
    payload = alert.payload
    assert (payload["stream"]["id"], payload["stream"]["room_id"]) == ("s1", "room-1")
    assert payload["stream"]["profile"] == "strict"
    assert payload["segment"]["id"] == seg.id
    assert payload["segment"]["ended_at"] == seg.ended_at.isoformat()
    assert payload["evidence"] is None  # AMS's copy of the clip is gone
    assert late.handler.handled == 1


async def test_a_verdict_that_outlived_its_row_is_recorded_and_alerted(late: Late) -> None:
    # Killed with SIGKILL: the segment never got a row; its late verdict creates it.
    seg = segment("s1", seq=4)
    await late.handler(risky(seg), seg.info())
    assert await _row(late.db, seg.id) == ("moderated", "high", "room-1")
    assert [a.payload["segment"]["id"] for a in late.sink.alerts] == [seg.id]


async def test_a_late_alert_is_dated_at_its_segment_end_and_so_goes_out_stale(
    late: Late,
) -> None:
    seg = segment("s1", seq=2)
    await late.handler(risky(seg), seg.info())
    (alert,) = late.sink.alerts
    assert alert.detected_at == seg.ended_at
    assert alert.payload["detected_at"] == seg.ended_at.isoformat()
    published = stamp_published(alert.payload, seg.ended_at + timedelta(minutes=10), 300.0)
    assert (published["latency_seconds"], published["stale"]) == (600.0, True)


async def test_a_stream_the_daemon_no_longer_runs_alerts_in_its_remembered_room(
    late: Late,
) -> None:
    # Attached through the API (or since removed from the config) before the restart.
    await late.attached.remember([stream("api-1", room="room-9", profile="strict", show="x")])
    seg = segment("api-1", seq=0)
    await late.handler(risky(seg), seg.info())
    (alert,) = late.sink.alerts
    assert alert.room_id == "room-9"
    assert alert.payload["stream"] == {
        "id": "api-1",
        "room_id": "room-9",
        "profile": "strict",
        "biz_type": "strict_rooms",
        "metadata": {"show": "x"},
    }
    assert await _row(late.db, seg.id) == ("moderated", "high", "room-9")


@pytest.mark.parametrize(
    ("stream_id", "profile", "judged_with"),
    [
        ("s1", "default", "default"),  # attached again since the fixture: the last one counts
        ("old", "removed", "default"),  # a profile no longer defined gives way to the default
    ],
)
async def test_a_stream_is_judged_as_last_attached_with_a_profile_that_exists(
    late: Late, stream_id: str, profile: str, judged_with: str
) -> None:
    await late.attached.remember([stream(stream_id, room="room-2", profile=profile)])
    seg = segment(stream_id, seq=9)
    await late.handler(risky(seg), seg.info())
    (alert,) = late.sink.alerts
    judged = alert.payload["stream"]
    assert (judged["room_id"], judged["profile"]) == ("room-2", judged_with)


async def test_a_stream_never_remembered_gets_its_id_as_room_and_the_default_profile(
    late: Late,
) -> None:
    seg = segment("gone", seq=0)
    await late.handler(risky(seg), seg.info())
    (alert,) = late.sink.alerts
    assert alert.payload["stream"]["profile"] == "default"
    assert alert.payload["stream"]["room_id"] == "gone"
    assert await _row(late.db, seg.id) == ("moderated", "high", "gone")


async def test_a_late_pass_is_recorded_without_alert(late: Late) -> None:
    seg = segment("s1", seq=5)
    clean = Verdict(
        segment_id=seg.id,
        outcome=Outcome.MODERATED,
        engine="ams",
        engine_version="test",
        suggestion=Suggestion.PASS,
    )
    await late.handler(clean, seg.info())
    assert await _row(late.db, seg.id) == ("moderated", "none", "room-1")
    assert late.sink.alerts == []


async def test_a_late_failure_is_a_health_event(late: Late) -> None:
    seg = segment("s1", seq=6)
    await late.handler(_failed(seg), seg.info())
    assert late.sink.alerts == []
    (event,) = late.sink.events
    assert (event.kind, event.segment_id) == (StreamEventKind.SEGMENT_FAILED, seg.id)
    assert await _row(late.db, seg.id) == ("failed", "none", "room-1")


async def test_a_task_tracked_without_its_segment_only_updates_the_row(late: Late) -> None:
    # Rows tracked before segments were kept with their task: no alert can be built.
    seg = segment("s1", seq=7)
    await Results(late.db).record("room-1", seg, _failed(seg), "none")
    await late.handler(risky(seg), None)
    assert await _row(late.db, seg.id) == ("moderated", "high", "room-1")
    assert late.sink.alerts == []
    unknown = segment("s1", seq=8)
    await late.handler(risky(unknown), None)
    assert await _row(late.db, unknown.id) is None
    assert late.handler.handled == 1
