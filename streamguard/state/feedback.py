"""Moderators' feedback on alerts: confirmed, a false positive, or a miss. Stored, counted
and listed.

Feedback on a video frame (``frame_id``, or a ``segment_id`` that is a frame's id,
``{stream}-{attach time}-f{seq}``) is stored as ``target_type = "frame_id"`` and counted
apart from the audio's (``counts(frames=True)`` / ``counts(frames=False)``).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from streamguard.core.errors import StreamGuardError
from streamguard.state.db import Database

__all__ = ["Feedback", "FeedbackError", "FeedbackStore", "feedback_entry"]

KINDS = ("confirmed", "false_positive", "missed")
TARGETS = ("alert_id", "incident_id", "segment_id", "frame_id")
FRAME = "frame_id"
_FRAME_ID = re.compile(r"-\d{14}-f\d{5,}$")  # core.frame.frame_id's shape


def sense_filter(frames: bool | None, mark: str = "?") -> tuple[str, list[str]]:
    """The SQL ``WHERE`` clause (and its argument) counting frames' feedback only (True),
    the audio's only (False), or all (None)."""
    if frames is None:
        return "", []
    return f"WHERE target_type {'=' if frames else '<>'} {mark}", [FRAME]


class FeedbackError(StreamGuardError):
    """Feedback that does not say what it is about, or how."""


class FeedbackStore(Protocol):
    """Where feedback is kept: ``Feedback`` (SQLite) or, in fleet mode, the shared
    ``state.postgres.feedback.PgFeedback``."""

    async def record(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and store one piece of feedback; return it with its id."""

    async def counts(self, *, frames: bool | None = None) -> dict[str, dict[str, int]]:
        """Feedback counts by kind and label ("" when no label was given): on video frames
        only (``frames=True``), on the rest only (False), or all (None)."""

    async def entries(self, target_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest feedback, newest first; only about ``target_id`` when given."""


def feedback_entry(body: dict[str, Any]) -> dict[str, Any]:
    """One piece of feedback as it is stored, with a new id; ``FeedbackError`` naming the
    field when the body is not usable."""
    unknown = set(body) - {"kind", "label", "note", *TARGETS}
    if unknown:
        raise FeedbackError(f"unknown field(s): {', '.join(sorted(unknown))}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise FeedbackError(f"kind must be one of {', '.join(KINDS)}")
    targets = [t for t in TARGETS if t in body]
    if len(targets) != 1:
        raise FeedbackError(f"give exactly one of {', '.join(TARGETS)}")
    target = targets[0]
    fields = {
        "target": body[target],
        "label": body.get("label", ""),
        "note": body.get("note", ""),
    }
    for name, value in fields.items():
        if not isinstance(value, str) or len(value) > 2000:
            raise FeedbackError(f"{name} must be a string of at most 2000 characters")
    if not fields["target"]:
        raise FeedbackError(f"{target} must not be empty")
    if target == "segment_id" and _FRAME_ID.search(fields["target"]):
        target = FRAME  # a frame's result, named as the results list it
    return {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "target_type": target,
        "target_id": fields["target"],
        "label": fields["label"],
        "note": fields["note"],
        "created_at": datetime.now(UTC).isoformat(),
    }


class Feedback:
    """The ``feedback`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and store one piece of feedback; return it with its id."""
        entry = feedback_entry(body)
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT INTO feedback VALUES (:id, :kind, :target_type, :target_id, :label,"
                " :note, :created_at)",
                entry,
            )
        )
        return entry

    async def counts(self, *, frames: bool | None = None) -> dict[str, dict[str, int]]:
        """Feedback counts by kind and label ("" when no label was given): on video frames
        only (``frames=True``), on the rest only (False), or all (None)."""
        where, args = sense_filter(frames)

        def fetch(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            counts: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
            for row in conn.execute(
                f"SELECT kind, label, count(*) AS n FROM feedback {where} GROUP BY kind, label",
                args,
            ):
                counts[row["kind"]][row["label"]] = row["n"]
            return counts

        return await self._db.run(fetch)

    async def entries(self, target_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest feedback, newest first; only about ``target_id`` when given."""
        where, args = ("WHERE target_id = ?", [target_id]) if target_id is not None else ("", [])

        def fetch(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                f"SELECT * FROM feedback {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                [*args, limit],
            )
            return [dict(row) for row in rows]

        return await self._db.run(fetch)
