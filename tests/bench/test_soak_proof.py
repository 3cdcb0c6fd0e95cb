"""The soak's proof finds what it claims to find: a hole, audio heard without a result, an
overlapping second judgement, a risky result without a delivered alert, history lost."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.soak.bus import Consumer
from bench.soak.daemon import Lifetime
from bench.soak.proof import Proof, prove
from bench.soak.sources import Connection, LiveRoom

START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
SEGMENT = 15


def _database(path: Path, segments: list[tuple[int, float, str]], alerts: list[str]) -> None:
    """Results of stream s1 attached at START: (seq, start offset, risk) each; the alert
    history holds ``alerts`` (alert ids of segments by seq)."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE results (segment_id, stream_id, seq, duration, outcome, reason, risk,"
            " segment)"
        )
        conn.execute("CREATE TABLE incident_alerts (alert_id, event, segment_id)")
        conn.execute("CREATE TABLE outbox_dead_letters (id)")
        conn.execute("CREATE TABLE ams_segments (segment_id, state)")
        conn.execute("CREATE TABLE alerts_outbox (seq)")
        for seq, offset, risk in segments:
            began = START + timedelta(seconds=offset)
            info = {
                "started_at": began.isoformat(),
                "ended_at": (began + timedelta(seconds=SEGMENT)).isoformat(),
            }
            conn.execute(
                "INSERT INTO results VALUES (?, 's1', ?, ?, 'moderated', '', ?, ?)",
                (_segment_id(seq), seq, SEGMENT, risk, json.dumps(info)),
            )
        for alert_id in alerts:
            conn.execute("INSERT INTO incident_alerts VALUES (?, 'new', ?)", (alert_id, "x"))


def _segment_id(seq: int) -> str:
    return f"s1-{START:%Y%m%d%H%M%S}-{seq:05d}"


def _prove(
    tmp_path: Path,
    segments: list[tuple[int, float, str]],
    *,
    heard: float,
    delivered: list[int],
    recorded_alerts: list[int] | None = None,
) -> Proof:
    db = tmp_path / "s.db"
    alerts = delivered if recorded_alerts is None else recorded_alerts
    _database(db, segments, [f"alr-{seq}" for seq in alerts])
    room = LiveRoom(b"\0" * 1000, 1.0, 0.0, 0)  # 1000 bytes per second
    room.connections.append(
        Connection(opened_at=START.timestamp() + 0.5, media_bytes=int(heard * 1000))
    )
    consumer = Consumer(1883, "soak", "test")
    for seq in delivered:
        consumer.deliveries[f"alr-{seq}"] += 1
        consumer.alerts[f"alr-{seq}"] = {
            "segment": {"id": _segment_id(seq)},
            "incident": {"event": "new"},
        }
    life = Lifetime(started_at=START.timestamp() - 0.2, ended_at=START.timestamp() + 999)
    life.ended_by = "term"
    return prove(db, {"s1": room}, [life], consumer, SEGMENT)


def test_a_complete_run_loses_nothing(tmp_path: Path) -> None:
    proof = _prove(
        tmp_path, [(0, 0, "none"), (1, 15, "high"), (2, 30, "none")], heard=45.5, delivered=[1]
    )
    assert (proof.lost, proof.duplicates, proof.segments, proof.risky) == (0, [], 3, 1)


@pytest.mark.parametrize(
    ("segments", "heard", "delivered", "recorded", "found"),
    [
        ([(0, 0, "none"), (2, 30, "none")], 45.0, [], None, "holes"),
        ([(0, 0, "none"), (1, 15, "none")], 60.0, [], None, "unheard"),
        ([(0, 0, "none"), (1, 10, "none")], 30.0, [], None, "duplicates"),
        ([(0, 0, "high"), (1, 15, "none")], 30.0, [], None, "risky_without_alert"),
        ([(0, 0, "high"), (1, 15, "none")], 30.0, [0], [], "history_missing"),
        ([(0, 0, "none"), (1, 15, "none")], 30.0, [], [1], "undelivered"),
    ],
)
def test_each_kind_of_loss_is_found(
    tmp_path: Path,
    segments: list[tuple[int, float, str]],
    heard: float,
    delivered: list[int],
    recorded: list[int] | None,
    found: str,
) -> None:
    proof = _prove(tmp_path, segments, heard=heard, delivered=delivered, recorded_alerts=recorded)
    assert getattr(proof, found), proof
    assert proof.lost > 0 or proof.duplicates
