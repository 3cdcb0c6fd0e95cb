"""The alert: a versioned JSON document (schema in ``schema/alert.v1.schema.json``).

``alert_id`` is derived from the incident, the event and the segment, so the same segment
judged again produces the same id and consumers can drop duplicates. ``published_at``,
``latency_seconds`` and ``stale`` are stamped when the alert leaves the outbox.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from streamguard.core.frame import FrameInfo
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.moderation.incidents import Incident, IncidentEvent
from streamguard.moderation.policy import Decision

__all__ = ["SCHEMA_VERSION", "Alert", "alert_schema", "stamp_published"]

SCHEMA_VERSION = "1"
EXCERPT_CHARS = 280
"""Longest transcript excerpt an alert carries; the evidence record has the whole text."""


def alert_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the alert JSON."""
    text = resources.files("streamguard.moderation").joinpath("schema/alert.v1.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert about an incident event, ready for the outbox."""

    alert_id: str
    room_id: str
    stream_id: str
    detected_at: datetime
    payload: dict[str, Any]
    """The alert JSON without the publish stamps."""

    @classmethod
    def of(
        cls, incident: Incident, event: IncidentEvent, instance_id: str, detected_at: datetime
    ) -> Alert:
        """The alert for ``event`` of ``incident`` (about its latest segment)."""
        latest = incident.latest
        segment, verdict, decision = latest.segment, latest.verdict, latest.decision
        alert_id = _alert_id(incident.id, event, segment.id)
        payload: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "alert_id": alert_id,
            "instance": instance_id,
            "incident": {
                "id": incident.id,
                "event": event.value,
                "started_at": _utc(incident.started_at),
                "segments": incident.segments,
                "peak_risk": incident.peak.value,
            },
            "stream": {
                "id": latest.stream.id,
                "room_id": latest.stream.room_id,
                "profile": latest.profile,
                "biz_type": latest.biz_type,
                "metadata": dict(latest.stream.metadata),
            },
            "segment": _segment_json(segment),
            **({"frame": segment.frame_json()} if isinstance(segment, FrameInfo) else {}),
            **_judgement_json(verdict, decision),
            "evidence": latest.evidence.to_json() if latest.evidence else None,
            "detected_at": _utc(detected_at),
            "published_at": None,
            "latency_seconds": None,
            "stale": False,
        }
        return cls(alert_id, latest.stream.room_id, latest.stream.id, detected_at, payload)

    @classmethod
    def ended(cls, last: dict[str, Any], instance_id: str, detected_at: datetime) -> Alert:
        """The ``end`` alert of an incident whose last alert JSON was ``last`` (an incident
        a previous run left open)."""
        incident = {**last["incident"], "event": IncidentEvent.END.value}
        alert_id = _alert_id(incident["id"], IncidentEvent.END, last["segment"]["id"])
        payload = {
            **last,
            "alert_id": alert_id,
            "instance": instance_id,
            "incident": incident,
            "detected_at": _utc(detected_at),
            "published_at": None,
            "latency_seconds": None,
            "stale": False,
        }
        stream = last["stream"]
        return cls(alert_id, stream["room_id"], stream["id"], detected_at, payload)

    def to_json(self) -> dict[str, Any]:
        return self.payload


def _alert_id(incident_id: str, event: IncidentEvent, segment_id: str) -> str:
    key = "\x1f".join((incident_id, event.value, segment_id))
    return "alr-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def stamp_published(payload: dict[str, Any], now: datetime, stale_after: float) -> dict[str, Any]:
    """The alert JSON as it leaves: published time, latency and stale flag filled in."""
    detected = datetime.fromisoformat(payload["detected_at"])
    latency = max(0.0, (now - detected).total_seconds())
    return {
        **payload,
        "published_at": _utc(now),
        "latency_seconds": round(latency, 6),
        "stale": latency > stale_after,
    }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _excerpt(text: str, around: int) -> str:
    if len(text) <= EXCERPT_CHARS:
        return text
    start = max(0, min(around - EXCERPT_CHARS // 3, len(text) - EXCERPT_CHARS))
    piece = text[start : start + EXCERPT_CHARS]
    return ("…" if start else "") + piece + ("…" if start + EXCERPT_CHARS < len(text) else "")


def _segment_json(segment: Segment | SegmentInfo) -> dict[str, Any]:
    return {
        "id": segment.id,
        "seq": segment.seq,
        "started_at": _utc(segment.started_at),
        "ended_at": _utc(segment.ended_at),
        "media_start": round(segment.media_start, 3),
        "duration": round(segment.duration, 3),
        "flags": sorted(segment.flags),
    }


def _judgement_json(verdict: Verdict, decision: Decision) -> dict[str, Any]:
    """The alert's ``risk``, ``keywords``, ``transcript_excerpt`` and ``engine``."""
    return {
        "risk": {
            "level": decision.risk.value,
            "suggestion": decision.suggestion.value,
            "label": decision.label,
            "sub_label": decision.sub_label,
            "score": decision.score,
            "custom_library": decision.custom,
        },
        "keywords": [
            {
                "keyword": k.keyword,
                "library_id": k.library_id,
                "library_name": k.library_name,
                "label": k.label,
                "sub_label": k.sub_label,
                "score": k.score,
            }
            for k in decision.keywords
        ],
        "transcript_excerpt": _excerpt(
            verdict.text, decision.keywords[0].text_start if decision.keywords else 0
        ),
        "engine": {
            "name": verdict.engine,
            "version": verdict.engine_version,
            "task_id": verdict.task_id,
        },
    }
