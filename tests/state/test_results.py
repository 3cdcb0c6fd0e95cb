"""The results table: every segment recorded, queried by filters, late verdicts replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.state.db import Database
from streamguard.state.results import ResultQuery, Results

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def segment(seq: int, stream: str = "s1") -> Segment:
    start = T0 + timedelta(seconds=15 * seq)
    return Segment(
        stream_id=stream,
        seq=seq,
        attached_at=T0,
        samples=np.zeros(15 * 16_000, dtype=np.int16),
        started_at=start,
        ended_at=start + timedelta(seconds=15),
        media_start=15.0 * seq,
        gap_before=0.0,
        flags=frozenset(),
    )


def verdict(seg: Segment, outcome: Outcome, label: str = "Normal", reason: str = "") -> Verdict:
    block = label != "Normal"
    return Verdict(
        segment_id=seg.id,
        outcome=outcome,
        engine="ams",
        engine_version="test",
        suggestion=Suggestion.BLOCK if block else Suggestion.PASS,
        label=label,
        score=90 if block else 0,
        hit=block,
        reason=reason,
    )


async def test_filters_and_late_verdicts(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db:
        results = Results(db)
        first, second, other = segment(0), segment(1), segment(0, "s2")
        await results.record("room", first, verdict(first, Outcome.MODERATED), "none")
        await results.record(
            "room", second, verdict(second, Outcome.FAILED, reason="deadline"), "none"
        )
        await results.record("room2", other, verdict(other, Outcome.NO_SPEECH), "none")
        assert await results.stream_of(second.id) == "s1"
        assert await results.stream_of("nope") is None

        late = verdict(second, Outcome.MODERATED, "Abuse", "keyword hit")
        assert await results.replace_verdict(late, "high")
        assert not await results.replace_verdict(verdict(segment(9), Outcome.MODERATED), "none")

        high = await results.query(ResultQuery(min_risk="high"))
        assert [r["segment"]["segment_id"] for r in high] == [second.id]
        assert high[0]["verdict"]["label"] == "Abuse"
        s1 = await results.query(ResultQuery(stream_id="s1"))
        assert [r["segment"]["seq"] for r in s1] == [0, 1]
        later = await results.query(ResultQuery(since=T0 + timedelta(seconds=10)))
        assert [r["segment"]["segment_id"] for r in later] == [second.id]
        assert await results.prune(T0 + timedelta(seconds=10)) == 2  # s1 seq 0 and s2 seq 0
        assert [r["segment"]["segment_id"] for r in await results.query(ResultQuery())] == [
            second.id
        ]
        usage = await results.usage()
        assert usage == [
            {
                "day": "2026-11-22",
                "label": "Abuse",
                "minutes_ingested": 0.25,
                "minutes_moderated": 0.25,
                "minutes_skipped_silent": 0.0,
                "minutes_unjudged": 0.0,
            }
        ]
