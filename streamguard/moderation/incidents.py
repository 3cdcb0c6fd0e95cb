"""Incidents: consecutive risky segments of one room and label, with new/update/end events.

An incident opens with the first alerting segment of a (room, label), is updated by the
next ones, and ends once ``quiet_seconds`` pass without another — decided by a timer, so
an incident of a stream that died still ends. Its id is derived from the room, the label
and the first segment, so replaying the same segments gives the same incident.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from streamguard.config.streams import StreamConfig
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.moderation.evidence import Evidence
from streamguard.moderation.policy import Decision, RiskLevel

__all__ = ["Incident", "IncidentEvent", "IncidentTracker", "Observation"]


class IncidentEvent(StrEnum):
    """What an alert says about its incident."""

    NEW = "new"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True, slots=True)
class Observation:
    """One alerting segment: what was heard, how it was judged, and its evidence."""

    stream: StreamConfig
    profile: str
    biz_type: str
    segment: Segment | SegmentInfo
    verdict: Verdict
    decision: Decision
    evidence: Evidence | None


@dataclass(slots=True)
class Incident:
    """An open incident; ``latest`` is its most recent alerting segment."""

    id: str
    room_id: str
    label: str
    started_at: datetime
    latest: Observation
    quiet_seconds: float
    cooldown_seconds: float
    last_seen: float
    """Clock time of the latest alerting segment."""
    last_alerted: float
    last_alerted_risk: RiskLevel
    segments: int = 1
    peak: RiskLevel = RiskLevel.NONE

    @property
    def deadline(self) -> float:
        return self.last_seen + self.quiet_seconds


def incident_id(room_id: str, label: str, first_segment_id: str) -> str:
    """Stable id of the incident a segment opens."""
    key = "\x1f".join((room_id, label, first_segment_id))
    return "inc-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


class IncidentTracker:
    """Open incidents by (room, label); pure bookkeeping, the caller runs the timer."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: dict[tuple[str, str], Incident] = {}

    @property
    def open(self) -> list[Incident]:
        return list(self._open.values())

    def observe(
        self, observation: Observation, *, quiet_seconds: float, cooldown_seconds: float
    ) -> tuple[Incident, IncidentEvent | None]:
        """Count an alerting segment; return its incident and the event to alert, if any.

        ``update`` is held back within the cooldown unless the risk rose; the segment still
        counts in the incident.
        """
        now = self._clock()
        decision = observation.decision
        key = (observation.stream.room_id, decision.label)
        incident = self._open.get(key)
        if incident is None:
            incident = Incident(
                id=incident_id(key[0], key[1], observation.segment.id),
                room_id=key[0],
                label=key[1],
                started_at=observation.segment.started_at,
                latest=observation,
                quiet_seconds=quiet_seconds,
                cooldown_seconds=cooldown_seconds,
                last_seen=now,
                last_alerted=now,
                last_alerted_risk=decision.risk,
                peak=decision.risk,
            )
            self._open[key] = incident
            return incident, IncidentEvent.NEW
        incident.latest = observation
        incident.last_seen = now
        incident.quiet_seconds = quiet_seconds
        incident.cooldown_seconds = cooldown_seconds
        incident.segments += 1
        if decision.risk.rank > incident.peak.rank:
            incident.peak = decision.risk
        rose = decision.risk.rank > incident.last_alerted_risk.rank
        if rose or now - incident.last_alerted >= cooldown_seconds:
            incident.last_alerted = now
            incident.last_alerted_risk = decision.risk
            return incident, IncidentEvent.UPDATE
        return incident, None

    def expire(self) -> list[Incident]:
        """Close and return the incidents that have been quiet long enough."""
        now = self._clock()
        ended = [incident for incident in self._open.values() if now >= incident.deadline]
        for incident in ended:
            del self._open[(incident.room_id, incident.label)]
        return ended

    def withdraw(self, incident_id: str) -> None:
        """Forget an incident whose opening was never recorded (its segment's writes were
        refused): no ``end`` follows a ``new`` nobody got."""
        for key, incident in list(self._open.items()):
            if incident.id == incident_id:
                del self._open[key]

    def end_all(self) -> list[Incident]:
        """Close and return every open incident (shutdown)."""
        ended = list(self._open.values())
        self._open.clear()
        return ended

    def next_deadline(self) -> float | None:
        """Clock time at which the next incident ends if nothing else happens."""
        return min((incident.deadline for incident in self._open.values()), default=None)
