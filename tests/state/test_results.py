"""The results table: every segment recorded, queried by filters, late verdicts replace; on
both backends (``backend``: SQLite, fleet mode's PostgreSQL) but for the FTS5 index."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.state.db import Database
from streamguard.state.results import ResultQuery, Results, fts_phrases
from tests.support.backends import Backend

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


async def test_filters_and_late_verdicts(backend: Backend) -> None:
    await backend.lease("s1", "s2")
    results = backend.results()
    first, second, other = segment(0), segment(1), segment(0, "s2")
    await results.record("room", first, verdict(first, Outcome.MODERATED), "none")
    await results.record("room", second, verdict(second, Outcome.FAILED, reason="deadline"), "none")
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
    assert [r["segment"]["segment_id"] for r in await results.query(ResultQuery())] == [second.id]
    usage = await results.usage()
    assert usage == [
        {
            "day": "2026-11-22",
            "label": "Abuse",
            "segments": 1,
            "minutes_ingested": 0.25,
            "minutes_moderated": 0.25,
            "minutes_skipped_silent": 0.0,
            "minutes_unjudged": 0.0,
            "frames": 0,
            "frames_judged": 0,
        }
    ]


async def test_text_search_over_transcripts_and_labels(backend: Backend) -> None:
    await backend.lease("s1", "s2")
    results = backend.results()
    first, second, third = segment(0), segment(1), segment(2, "s2")
    said = [
        (first, "room-a", "Normal", "hello there friends"),
        (second, "room-a", "Threat", "I will find you"),
        (third, "room-b", "Normal", "Hello again"),
    ]
    for seg, room, label, text in said:
        judged = replace(verdict(seg, Outcome.MODERATED, label), text=text)
        await results.record(room, seg, judged, "none")

    async def found(**filters: object) -> list[str]:
        rows = await results.query(ResultQuery(**filters))  # type: ignore[arg-type]
        return [row["segment"]["segment_id"] for row in rows]

    assert await found(text="hello") == [first.id, third.id]  # any case
    assert await found(text="hello friends") == [first.id]  # every word
    assert await found(text="threat") == [second.id]  # the label
    assert await found(text="hello", room_id="room-b") == [third.id]
    # Words only: query syntax (FTS5's, or a tsquery's) is taken literally, never an error.
    assert await found(text='"find" OR * NEAR(') == []

    # A segment recorded again (INSERT OR REPLACE) is found by its new words only.
    await results.record(
        "room-a", first, replace(verdict(first, Outcome.MODERATED), text="goodbye"), "none"
    )
    assert await found(text="hello") == [third.id]
    assert await found(text="goodbye") == [first.id]
    # Pruned results are gone from the index.
    assert await results.prune(T0 + timedelta(seconds=10)) == 1
    assert await found(text="goodbye") == []


async def test_a_late_verdict_is_found_by_its_words(
    backend: Backend,
) -> None:
    await backend.lease("s1")
    results = backend.results()
    seg = segment(0)
    await results.record("room-a", seg, verdict(seg, Outcome.FAILED, reason="deadline"), "none")
    late = replace(verdict(seg, Outcome.MODERATED, "Abuse"), text="you idiot")
    assert await results.replace_verdict(late, "high")
    rows = await results.query(ResultQuery(text="idiot abuse"))
    assert [row["segment"]["segment_id"] for row in rows] == [seg.id]


async def test_a_search_word_matches_whole_words_not_their_parts_or_punctuation(
    backend: Backend,
) -> None:
    await backend.lease("s1")
    results = backend.results()
    seg = segment(0)
    judged = replace(verdict(seg, Outcome.MODERATED), text="hello, I will find you at the Café")
    await results.record("room-a", seg, judged, "none")

    async def found(text: str) -> list[str]:
        rows = await results.query(ResultQuery(text=text))
        return [row["segment"]["segment_id"] for row in rows]

    assert await found("you!") == [seg.id]  # punctuation is no part of a word
    assert await found("hello find") == [seg.id]
    assert await found("hell") == []  # a part of a word is not the word
    assert await found("cafe") == [seg.id]  # diacritics removed, as FTS5's unicode61 does
    assert await found("the café") == [seg.id]


# SQLite only: the FTS5 index and its phrase quoting are the embedded backend's own.
async def test_the_fts5_index_forgets_pruned_rows(tmp_path: Path) -> None:
    assert fts_phrases('say "hi"') == '"say" """hi"""'
    async with Database(tmp_path / "s.db") as db:
        results = Results(db)
        for seq in range(3):
            seg = segment(seq)
            judged = replace(verdict(seg, Outcome.MODERATED), text="hello there")
            await results.record("room-a", seg, judged, "none")
        assert await results.prune(T0 + timedelta(seconds=20)) == 2
        left = await db.run(
            lambda conn: conn.execute("SELECT count(*) FROM results_search").fetchone()[0]
        )
        assert left == 1


# SQLite only: an index built by a migration over rows kept before it is FTS5's.
async def test_search_index_is_built_for_results_kept_before_it(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db:
        seg = segment(0)
        await Results(db).record(
            "room", seg, replace(verdict(seg, Outcome.MODERATED), text="older words"), "none"
        )

        def forget_index(conn: sqlite3.Connection) -> None:
            for trigger in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER results_search_{trigger}")
            conn.execute("DROP TABLE results_search")
            conn.execute("DELETE FROM schema_versions WHERE component = 'results_search'")

        await db.run(forget_index)
    async with Database(tmp_path / "s.db") as db:
        rows = await Results(db).query(ResultQuery(text="older"))
        assert [row["segment"]["segment_id"] for row in rows] == [seg.id]


async def test_latest_result_of_each_stream(backend: Backend) -> None:
    await backend.lease("s1", "s2")
    results = backend.results()
    for seg in (segment(0), segment(1), segment(0, "s2")):
        await results.record("room", seg, verdict(seg, Outcome.MODERATED), "none")
    latest = await results.latest(["s1", "s2", "s3"])
    assert {k: v["segment"]["seq"] for k, v in latest.items()} == {"s1": 1, "s2": 0}
