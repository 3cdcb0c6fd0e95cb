"""Usage statistics from the ``results`` table: minutes heard, judged and skipped, per UTC
day and label (Alibaba's and AMS's consoles call these "usage statistics").

Every segment is one row of ``results`` with its ``duration``, ``outcome`` and ``label``; a
segment is counted on the UTC day it started. A video frame is a result of duration 0 (a
segment always has some): it is counted in ``frames`` (and ``frames_judged`` when an engine
judged it), not in ``segments``. ``started_at`` is stored as ISO 8601 in UTC,
so its first ten characters are the day and a range on it is a range of time. The
``results_usage`` index (``state/schema.py``) covers the query: it is answered from the
index alone, without reading the rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["USAGE_COLUMNS", "USAGE_QUERY", "UsageRange", "usage_rows"]

USAGE_COLUMNS = (
    "day",
    "label",
    "segments",
    "minutes_ingested",
    "minutes_moderated",
    "minutes_skipped_silent",
    "minutes_unjudged",
    "frames",
    "frames_judged",
)
"""The fields of a usage row, in the order of the CSV export."""

_UNJUDGED = ("skipped_overloaded", "failed", "not_moderated")

USAGE_QUERY = f"""
SELECT substr(started_at, 1, 10) AS day, label, sum(duration > 0) AS segments,
       sum(duration) AS ingested,
       sum(CASE WHEN outcome = 'moderated' THEN duration ELSE 0 END) AS moderated,
       sum(CASE WHEN outcome = 'no_speech' THEN duration ELSE 0 END) AS silent,
       sum(CASE WHEN outcome IN ({",".join(f"'{o}'" for o in _UNJUDGED)})
           THEN duration ELSE 0 END) AS unjudged,
       sum(duration = 0) AS frames,
       sum(duration = 0 AND outcome = 'moderated') AS frames_judged
FROM results INDEXED BY results_usage
WHERE started_at >= ? AND started_at < ?
GROUP BY day, label ORDER BY day, label
"""
"""Segments and seconds per UTC day and label of the results started in [?, ?)."""

_FIRST = datetime(1, 1, 1, tzinfo=UTC)
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class UsageRange:
    """Segments that started from ``since`` (inclusive) to ``until`` (exclusive); None: open."""

    since: datetime | None = None
    until: datetime | None = None


def usage_rows(conn: sqlite3.Connection, span: UsageRange) -> list[dict[str, Any]]:
    """One row per UTC day and label with segments in ``span``, oldest day first; minutes
    rounded to the millisecond. Skipped is split: silent (the speech gate heard no speech,
    not billed) and unjudged (overloaded, failed or not moderated)."""
    since = (span.since or _FIRST).astimezone(UTC).isoformat()
    until = (span.until or _LAST).astimezone(UTC).isoformat()
    return [
        {
            "day": r["day"],
            "label": r["label"],
            "segments": r["segments"],
            "minutes_ingested": _minutes(r["ingested"]),
            "minutes_moderated": _minutes(r["moderated"]),
            "minutes_skipped_silent": _minutes(r["silent"]),
            "minutes_unjudged": _minutes(r["unjudged"]),
            "frames": r["frames"],
            "frames_judged": r["frames_judged"],
        }
        for r in conn.execute(USAGE_QUERY, (since, until))
    ]


def _minutes(seconds: float) -> float:
    return round(seconds / 60, 3)
