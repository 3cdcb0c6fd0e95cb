"""Alerting: from a decided segment to the alerts to emit, through incidents and evidence.

``Alerting.raise_alerts(stream, segment, verdict, decision, clip)`` (called by
``Outcomes.handle``, which made the decision) keeps or deletes the segment's clip, updates the
room's incident and emits the ``new``/``update`` alert; the supervised loop
``alerts.incident-timer`` emits ``end`` once an incident has been quiet for its profile's
``incident_quiet_seconds`` — also when its stream died. Segments that failed or were skipped
become health events, never alerts. Open incidents end on shutdown; with a database they are
also journalled, so incidents a killed run left open end at the next start.

A clip the disk refuses to keep does not stop the alert: it goes out with ``evidence: null``
and ``on_evidence_not_kept`` is told (the daemon counts it and raises a health event).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.status import StreamEvent, StreamEventKind
from streamguard.core.supervisor import Loop, Supervisor, shared_or_own
from streamguard.core.verdict import Outcome, Verdict
from streamguard.moderation.alert import Alert
from streamguard.moderation.evidence import Evidence, EvidenceNotKept, EvidenceStore
from streamguard.moderation.incidents import Incident, IncidentEvent, IncidentTracker, Observation
from streamguard.moderation.policy import Decision
from streamguard.moderation.sink import AlertSink, Units, no_unit
from streamguard.state.db import Database
from streamguard.state.incidents import IncidentHistory, IncidentStore
from streamguard.state.journal import IncidentJournal
from streamguard.state.spool import DIRECT, Writes

__all__ = ["Alerting", "EvidenceNotKeptReport"]

log = logging.getLogger(__name__)

EvidenceNotKeptReport = Callable[[SegmentInfo | Segment, str, str | None], Awaitable[None]]
"""Told (segment, why, the id of the alert that went without it) when a clip is not kept."""

_HEALTH_EVENTS = {
    Outcome.FAILED: StreamEventKind.SEGMENT_FAILED,
    Outcome.SKIPPED_OVERLOADED: StreamEventKind.SEGMENT_SKIPPED,
}


class Alerting:
    """Policy, incidents and evidence in front of an ``AlertSink``; runs the quiet timer."""

    def __init__(
        self,
        profiles: Mapping[str, ProfileConfig],
        sink: AlertSink,
        *,
        instance_id: str,
        evidence: EvidenceStore | None = None,
        db: Database | None = None,
        supervisor: Supervisor | None = None,
        writes: Writes = DIRECT,
        on_evidence_not_kept: EvidenceNotKeptReport | None = None,
        history: IncidentStore | None = None,
        journal: IncidentJournal | None = None,
        units: Units = no_unit,
    ) -> None:
        self.profiles = profiles
        self._units = units
        """Fleet mode: an incident's end (alert, history, journal) is one unit of work."""
        self.sink = sink
        self.instance_id = instance_id
        self.evidence = evidence
        self.incidents = IncidentTracker()
        self._journal = journal or (IncidentJournal(db, writes) if db is not None else None)
        self._history: IncidentStore | None = history
        """Where incidents are recorded: ``history`` (fleet mode's shared one), else ``db``."""
        if history is None and db is not None:
            self._history = IncidentHistory(db, writes)
        self._on_evidence_not_kept = on_evidence_not_kept
        self.evidence_not_kept = 0
        """Clips of alerting segments that could not be kept, since start."""
        self._timer_wake = asyncio.Event()
        self._supervisor = supervisor
        self._stack = AsyncExitStack()
        self._timer: Loop | None = None

    async def __aenter__(self) -> Self:
        if self._journal is not None:
            await self.end_left_open(await self._journal.left_open())
        async with AsyncExitStack() as stack:
            supervisor = await shared_or_own(self._supervisor, stack)
            self._timer = supervisor.start("alerts.incident-timer", self._run_timer)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            await self._timer.stop()
        await self._stack.aclose()
        # Consumers should not be left with incidents that never end.
        for incident in self.incidents.end_all():
            await self._end(incident)

    async def end_left_open(self, left: list[dict[str, Any]]) -> None:
        """End incidents left open (by a previous run, or in fleet mode by a dead instance)
        from their latest alert JSON: the ``end`` alert a timely end would have sent."""
        for last in left:
            alert = Alert.ended(last, self.instance_id, _now())
            async with self._units(alert.stream_id):
                await self.sink.emit(alert)
                if self._history is not None:
                    await self._history.record(alert.payload)
                if self._journal is not None:
                    await self._journal.forget(last["incident"]["id"])

    async def end_orphans(self) -> int:
        """Fleet mode: adopt and end the open incidents of instances no longer alive;
        return how many."""
        shared = None if self._journal is None else self._journal.shared
        if shared is None:
            return 0
        left = await shared.adopt_orphans()
        await self.end_left_open(left)
        return len(left)

    async def raise_alerts(
        self,
        stream: StreamConfig,
        segment: Segment | SegmentInfo,
        verdict: Verdict,
        decision: Decision,
        clip: Path | None,
        *,
        detected_at: datetime | None = None,
    ) -> list[Alert]:
        """Act on ``decision`` for one segment of ``stream``; return the alerts emitted.

        The clip (if any) is taken over: kept as evidence when the segment alerts, else
        deleted. Without an evidence store clips are left where they are. ``detected_at``
        dates the alert (default: now).
        """
        profile = self.profiles[stream.profile]
        kind = _HEALTH_EVENTS.get(verdict.outcome)
        if kind is not None:
            await self.sink.event(
                StreamEvent(
                    stream_id=stream.id,
                    room_id=stream.room_id,
                    kind=kind,
                    at=segment.ended_at,
                    detail=verdict.reason,
                    segment_id=segment.id,
                )
            )
        if not decision.alerts:
            if clip is not None and self.evidence is not None:
                await self.evidence.discard(clip)
            return []
        evidence, not_kept = await self._keep(segment, verdict, clip)
        observation = Observation(
            stream, stream.profile, profile.biz_type, segment, verdict, decision, evidence
        )
        incident, event = self.incidents.observe(
            observation,
            quiet_seconds=profile.incident_quiet_seconds,
            cooldown_seconds=profile.cooldown_seconds,
        )
        self._timer_wake.set()
        alert = Alert.of(
            incident, event or IncidentEvent.UPDATE, self.instance_id, detected_at or _now()
        )
        if self._journal is not None:
            # Journalled before the alert is queued: after a crash in between, the incident
            # still gets its end.
            await self._journal.record(incident.id, alert.payload)
        if self._history is not None:
            await self._history.record(alert.payload, verdict, sent=event is not None)
        if not_kept is not None and self._on_evidence_not_kept is not None:
            await self._on_evidence_not_kept(segment, not_kept, alert.alert_id if event else None)
        if event is None:
            return []
        await self.sink.emit(alert)
        return [alert]

    def withdraw(self, alerts: list[Alert]) -> None:
        """The writes of the segment that raised ``alerts`` were refused (fleet mode: its
        stream moved to another instance): the incidents they opened are forgotten."""
        for alert in alerts:
            incident = alert.payload["incident"]
            if incident["event"] == IncidentEvent.NEW.value:
                self.incidents.withdraw(incident["id"])

    async def forget_evidence(self, segment: Segment | SegmentInfo, clip: Path) -> None:
        """The writes of ``segment`` were refused as stale: the evidence kept of its clip
        goes too (no result, incident or alert points at it)."""
        if self.evidence is not None:
            await self.evidence.forget(segment, clip)

    async def _keep(
        self, segment: Segment | SegmentInfo, verdict: Verdict, clip: Path | None
    ) -> tuple[Evidence | None, str | None]:
        """The segment's evidence, or None and why it could not be kept."""
        if clip is None or self.evidence is None:
            return None, None
        try:
            return await self.evidence.keep(segment, verdict, clip), None
        except EvidenceNotKept as exc:
            self.evidence_not_kept += 1
            log.error("alerting without evidence: %s", exc, extra={"stream_id": segment.stream_id})
            return None, str(exc)

    async def _end(self, incident: Incident) -> None:
        alert = Alert.of(incident, IncidentEvent.END, self.instance_id, _now())
        async with self._units(alert.stream_id):
            await self.sink.emit(alert)
            if self._history is not None:
                await self._history.record(alert.payload)
            if self._journal is not None:
                await self._journal.forget(incident.id)

    async def _run_timer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._timer_wake.clear()
            deadline = self.incidents.next_deadline()
            # The tracker's clock is monotonic, like the loop's, so deadlines map directly.
            when = None if deadline is None else loop.time() + max(0.0, deadline - time.monotonic())
            try:
                async with asyncio.timeout_at(when):
                    await self._timer_wake.wait()
            except TimeoutError:
                pass
            for incident in self.incidents.expire():
                await self._end(incident)


def _now() -> datetime:
    return datetime.now(UTC)
