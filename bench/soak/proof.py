"""What the soak proves afterwards, from the state database, the rooms' logs and the consumer.

"Heard" is defined from the sources' side. A room's server logs every connection and the
media bytes it sent; the seconds sent on connections a daemon process opened are what that
process could hear. The daemon cuts a stream's audio, from its attach time in that process,
into segments numbered 0, 1, 2 … counted in samples. So:

* every segment cut has exactly one result: the results of each (stream, attach) run
  0 … n-1 without a hole (a hole is a lost segment; the database key forbids a second
  result of one segment), no two results of a stream cover the same wall-clock time (a
  duplicate judgement of the same audio), and every failed result says why;
* every second heard is in a segment with a result: per stream and process, the seconds
  sent minus the seconds of its results is at most what was still in flight when the
  process ended (the partial segment being filled and about a second of buffers when it
  was SIGKILLed; a second's buffers when it was stopped with SIGTERM, which judges the
  partial tail) plus a fraction of a second per connection (a torn MP3 frame at each
  reconnect or burst of garbage). More is lost audio, counted in lost segments of 15 s;
* every risky result (risk medium or high) has an alert for its segment that reached the
  consumer, and the alerts the daemon recorded as raised (the incident history,
  ``incident_alerts``) are exactly the alerts the consumer got, matched by alert_id (an
  alert recorded and never delivered is lost; one delivered and not recorded is history
  lost); deliveries beyond the first are duplicates (QoS 1 allows them; they are counted).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.soak.bus import Consumer
from bench.soak.daemon import Lifetime
from bench.soak.sources import LiveRoom

__all__ = ["Proof", "prove"]

_IN_FLIGHT = 2.0  # seconds of decoded audio (a chunk) and socket buffers a process holds
_PER_CONNECTION = 0.3  # a torn frame at each reconnect, junk, or the burst's edge
_OVERLAP = 0.5  # results of one stream overlapping more than this are a duplicate


@dataclass
class Proof:
    segments: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failed_without_reason: int = 0
    holes: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    heard_seconds: float = 0.0
    recorded_seconds: float = 0.0
    unheard: list[str] = field(default_factory=list)
    in_flight: dict[str, float] = field(default_factory=dict)
    """Seconds heard without a result (yet) at the end of a run, by how the run ended."""
    worst_margin: float = -math.inf
    """The largest (heard - recorded - allowed) of any stream in any run: <= 0 passes."""
    lost_segments: int = 0
    risky: int = 0
    raised: int = 0
    delivered: int = 0
    deliveries: int = 0
    risky_without_alert: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    history_missing: list[str] = field(default_factory=list)
    """Alerts delivered that the incident history (the console's) does not know."""
    dead_letters: int = 0
    pending_ams: int = 0
    outbox_left: int = 0

    @property
    def lost(self) -> int:
        """Segments and alerts lost, all kinds together: must be 0."""
        return (
            self.lost_segments
            + len(self.holes)
            + len(self.risky_without_alert)
            + len(self.undelivered)
            + len(self.history_missing)
            + self.dead_letters
            + self.pending_ams
        )


def _rows(db: Path, query: str) -> list[sqlite3.Row]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(query).fetchall()
        except sqlite3.OperationalError:  # a table the run never created
            return []


def prove(
    db: Path,
    rooms: dict[str, LiveRoom],
    lifetimes: list[Lifetime],
    consumer: Consumer,
    segment_seconds: int,
) -> Proof:
    proof = Proof()
    results = _rows(db, "SELECT * FROM results")
    runs = _check_segments(proof, results)
    _check_heard(proof, runs, rooms, lifetimes, segment_seconds)
    _check_alerts(proof, results, _rows(db, "SELECT * FROM incident_alerts"), consumer)
    proof.dead_letters = len(_rows(db, "SELECT id FROM outbox_dead_letters"))
    proof.pending_ams = len(
        _rows(db, "SELECT segment_id FROM ams_segments WHERE state NOT IN ('done', 'failed')")
    )
    proof.outbox_left = len(_rows(db, "SELECT seq FROM alerts_outbox"))
    return proof


def _attached_at(segment_id: str) -> datetime:
    """The attach time inside a segment id (``{stream}-{%Y%m%d%H%M%S}-{seq}``, UTC)."""
    stamp = segment_id.rsplit("-", 2)[1]
    return datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


Run = dict[tuple[str, datetime], list[sqlite3.Row]]


def _check_segments(proof: Proof, results: list[sqlite3.Row]) -> Run:
    """Group results by (stream, attach); find holes, duplicates and unexplained failures."""
    runs: Run = defaultdict(list)
    for row in results:
        runs[(row["stream_id"], _attached_at(row["segment_id"]))].append(row)
        proof.outcomes[row["outcome"]] += 1
        if row["outcome"] == "failed" and not row["reason"].strip():
            proof.failed_without_reason += 1
    proof.segments = len(results)
    for (stream, attached), rows in runs.items():
        rows.sort(key=lambda r: r["seq"])
        seqs = {r["seq"] for r in rows}
        for seq in range(max(seqs) + 1):
            if seq not in seqs:
                proof.holes.append(f"{stream}@{attached:%H:%M:%S} seq {seq}")
    by_stream: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for row in results:
        info = json.loads(row["segment"])
        span = (
            datetime.fromisoformat(info["started_at"]),
            datetime.fromisoformat(info["ended_at"]),
        )
        by_stream[row["stream_id"]].append((*span, row["segment_id"]))
    for spans in by_stream.values():
        spans.sort()
        for (_, end, before), (start, _, after) in itertools.pairwise(spans):
            if (end - start).total_seconds() > _OVERLAP:
                proof.duplicates.append(f"{after} overlaps {before}")
    return runs


def _check_heard(
    proof: Proof,
    runs: Run,
    rooms: dict[str, LiveRoom],
    lifetimes: list[Lifetime],
    segment_seconds: int,
) -> None:
    """Seconds sent per stream and process against the seconds of its results."""
    recorded: dict[tuple[str, int], float] = defaultdict(float)
    starts = [life.started_at for life in lifetimes]
    for (stream, attached), rows in runs.items():
        # The attach time is cut to the second: the run is the last one started by then.
        index = bisect.bisect_right(starts, attached.timestamp() + 1) - 1
        recorded[(stream, index)] += sum(float(r["duration"]) for r in rows)
    for index, life in enumerate(lifetimes):
        until = life.ended_at if life.ended_at is not None else math.inf
        for stream, room in rooms.items():
            heard = room.heard_seconds(life.started_at, until)
            got = recorded[(stream, index)]
            connections = [c for c in room.connections if life.started_at <= c.opened_at < until]
            torn = len(connections) + sum(1 for c in connections if c.junk_bytes)
            allowed = _IN_FLIGHT + _PER_CONNECTION * torn
            if life.ended_by != "term":
                allowed += segment_seconds
            proof.heard_seconds += heard
            proof.recorded_seconds += got
            ended = life.ended_by or "running"
            proof.in_flight[ended] = proof.in_flight.get(ended, 0.0) + max(0.0, heard - got)
            proof.worst_margin = max(proof.worst_margin, heard - got - allowed)
            if heard - got > allowed:
                missing = heard - got - allowed
                proof.lost_segments += math.ceil(missing / segment_seconds)
                proof.unheard.append(
                    f"{stream} in run {index} ({life.ended_by or 'running'}): heard {heard:.1f} s,"
                    f" recorded {got:.1f} s, allowed {allowed:.1f} s in flight"
                )


def _check_alerts(
    proof: Proof, results: list[sqlite3.Row], history: list[sqlite3.Row], consumer: Consumer
) -> None:
    """Risky results against the alerts the consumer got (by segment), and the alerts the
    incident history recorded against those it got (by alert_id), both ways."""
    recorded = {r["alert_id"] for r in history}
    alerted = {
        alert["segment"]["id"]
        for alert in consumer.alerts.values()
        if alert["incident"]["event"] != "end" and alert.get("segment")
    }
    risky = [r["segment_id"] for r in results if r["risk"] in ("medium", "high")]
    proof.risky = len(risky)
    proof.risky_without_alert = [s for s in risky if s not in alerted]
    proof.raised = len(recorded | set(consumer.deliveries))
    proof.undelivered = sorted(recorded - set(consumer.deliveries))
    proof.history_missing = sorted(set(consumer.deliveries) - recorded)
    proof.delivered = len(consumer.deliveries)
    proof.deliveries = sum(consumer.deliveries.values())
