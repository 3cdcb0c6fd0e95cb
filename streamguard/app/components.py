"""Build every component from the config, once, for ``streamguard run`` and ``moderate``.

    supervisor → database, the spool of writes waiting for it, and its stores → alert sink
    (outbox + MQTT, or JSON lines) → alerting and outcomes (policy, incidents, evidence)
    → late verdicts → engine

Results, alerts, events, the incident journal and attached streams are written through the
``Spool``: a full disk makes them wait in memory (bounded) instead of stopping the daemon.

Each component is entered on the caller's ``AsyncExitStack``, so it is torn down in reverse
order; every background loop runs under the one ``Supervisor``, whose crashes are counted in
``/metrics`` and published as instance health events.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from streamguard.app.fleet import FleetState, SharedStreamMemory, open_fleet_state
from streamguard.bus.sink import JsonLinesAlerts, MqttAlerts
from streamguard.bus.webhooks import Webhooks
from streamguard.config import Config
from streamguard.core.metrics import Metrics
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.status import InstanceEvent, InstanceEventKind
from streamguard.core.supervisor import Supervisor
from streamguard.engines.ams.engine import AmsEngine
from streamguard.engines.base import Engine
from streamguard.engines.factory import open_engine
from streamguard.engines.gated import GatedEngine
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.factory import open_image_engine
from streamguard.engines.local import LocalEngine
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.late import LateVerdicts
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.profiles import Profiles
from streamguard.moderation.sink import no_unit
from streamguard.state.attached import AttachedStreams
from streamguard.state.db import Database
from streamguard.state.desired import DesiredStreams
from streamguard.state.feedback import Feedback, FeedbackStore
from streamguard.state.heartbeat import Heartbeat
from streamguard.state.journal import IncidentJournal
from streamguard.state.outbox import MessageKind, OutboxMessage
from streamguard.state.postgres.webhooks import PgWebhookDeliveries
from streamguard.state.results import Results, ResultStore
from streamguard.state.spool import Spool, SpoolState

__all__ = ["Components", "open_components"]


@dataclass(frozen=True, slots=True)
class Components:
    """What the daemon (or ``moderate``) runs with, all entered on one exit stack."""

    supervisor: Supervisor
    db: Database
    profiles: Profiles
    results: ResultStore
    feedback: FeedbackStore
    attached: AttachedStreams
    desired: DesiredStreams
    heartbeat: Heartbeat
    spool: Spool
    sink: MqttAlerts | JsonLinesAlerts
    alerting: Alerting
    outcomes: Outcomes
    late: LateVerdicts
    engine: Engine
    fleet: FleetState | None = None
    """Fleet mode's shared database and stores (None: one machine on SQLite)."""
    image_engine: ImageEngine | None = None
    """Judges video frames and API images (the offline open_nsfw engine)."""


async def open_components(
    stack: AsyncExitStack,
    config: Config,
    *,
    metrics: Metrics,
    state_dir: Path,
    evidence: bool = True,
    out: TextIO | None = None,
    join_fleet: bool = False,
) -> Components:
    """Enter every component on ``stack``; ``evidence=False`` keeps no clips (``moderate``),
    ``out`` gets JSON-line alerts without a broker, ``join_fleet`` shares the state (fleet)."""
    supervisor = await stack.enter_async_context(Supervisor())
    db = await stack.enter_async_context(Database(config.sqlite_path(state_dir)))
    spool = await stack.enter_async_context(Spool(supervisor=supervisor))
    fleet = await open_fleet_state(stack, config, spool) if join_fleet else None
    results = fleet.results if fleet else Results(db, spool)
    feedback = fleet.feedback if fleet else Feedback(db)
    attached, desired, heartbeat = AttachedStreams(db, spool), DesiredStreams(db), Heartbeat(db)
    sink = await _open_sink(stack, config, db, metrics, supervisor, out, spool, fleet)
    report = _HealthReport(config.instance.id, metrics, sink)
    supervisor.report_to(report.crashed)
    spool.report_to(report.storage)
    profiles = Profiles(config.profiles)
    alerting = await _open_alerting(
        stack, config, profiles, sink, db, supervisor, spool, report, fleet, state_dir, evidence
    )
    await _watch_storage(metrics, spool, alerting, sink)
    outcomes = Outcomes(profiles, alerting, results, units=fleet.batches.unit if fleet else no_unit)
    memory = SharedStreamMemory(fleet.desired, attached) if fleet else attached
    late = LateVerdicts(attached=memory, profiles=profiles, results=results, outcomes=outcomes)
    # Before the engine starts: a late verdict of a configured stream is judged as configured.
    await attached.remember(config.streams)
    metrics.watch_late(lambda: late.handled)
    engine = await stack.enter_async_context(
        open_engine(
            config.engine,
            db=db,
            state_dir=state_dir,
            on_late_verdict=late,
            supervisor=supervisor,
            tasks=fleet.ams_tasks if fleet else None,
        )
    )
    _watch_engine(engine, metrics)
    image_engine = await open_image_engine(stack, config.image_engine)
    return Components(
        supervisor, db, profiles, results, feedback, attached, desired, heartbeat, spool, sink,
        alerting, outcomes, late, engine, fleet, image_engine,
    )  # fmt: skip


async def _open_alerting(
    stack: AsyncExitStack,
    config: Config,
    profiles: Profiles,
    sink: MqttAlerts | JsonLinesAlerts,
    db: Database,
    supervisor: Supervisor,
    spool: Spool,
    report: _HealthReport,
    fleet: FleetState | None,
    state_dir: Path,
    evidence: bool,
) -> Alerting:
    """Incidents and alerts, with evidence kept (and shared in a fleet) unless ``moderate``."""
    return await stack.enter_async_context(
        Alerting(
            profiles,
            sink,
            instance_id=config.instance.id,
            evidence=EvidenceStore.from_config(
                config.evidence, state_dir, shared=fleet.clips if fleet else None
            )
            if evidence
            else None,
            db=db,
            supervisor=supervisor,
            writes=spool,
            on_evidence_not_kept=report.evidence_not_kept,
            history=fleet.incidents if fleet else None,
            journal=IncidentJournal(db, spool, fleet.journal) if fleet else None,
            units=fleet.batches.unit if fleet else no_unit,
        )
    )


async def _open_sink(
    stack: AsyncExitStack,
    config: Config,
    db: Database,
    metrics: Metrics,
    supervisor: Supervisor,
    out: TextIO | None,
    spool: Spool,
    fleet: FleetState | None,
) -> MqttAlerts | JsonLinesAlerts:
    if config.mqtt is None:
        return JsonLinesAlerts(out or sys.stdout, sys.stderr)

    def acked(messages: Sequence[OutboxMessage]) -> None:
        metrics.alerts_published.inc(sum(1 for m in messages if m.kind is MessageKind.ALERT))

    mqtt = await stack.enter_async_context(
        MqttAlerts(
            config.mqtt,
            db,
            config.instance.id,
            on_acked=acked,
            supervisor=supervisor,
            writes=spool,
            outbox=fleet.outbox if fleet else None,
        )
    )
    if fleet is not None:  # a message added in a unit of work is committed after emit returned
        fleet.outbox.wake_on_add(mqtt.publisher.wake)
    metrics.watch_outbox(lambda: mqtt.health().backlog, lambda: mqtt.health().oldest_age or 0.0)
    metrics.watch_dead_letters(lambda: mqtt.outbox.dead_lettered_total)
    refusals = mqtt.publisher.refusals
    metrics.watch_refusals(lambda: refusals.refused_total, lambda: len(refusals.held))
    await _open_webhooks(stack, config, db, supervisor, mqtt, metrics, fleet)
    return mqtt


async def _open_webhooks(
    stack: AsyncExitStack,
    config: Config,
    db: Database,
    supervisor: Supervisor,
    mqtt: MqttAlerts,
    metrics: Metrics,
    fleet: FleetState | None,
) -> None:
    """Webhooks read the outbox's alerts; entered even with none configured (it forgets the
    delivery cursors of destinations removed from the config). In fleet mode their feed is
    the shared outbox's (``state.postgres.webhooks``)."""
    shared = None
    if fleet is not None:
        alive = config.state.lease_seconds
        shared = PgWebhookDeliveries(fleet.db, config.instance.id, alive_within=alive)
    webhooks = Webhooks(
        config.webhooks,
        db,
        deliveries=shared,
        supervisor=supervisor,
        stale_after=mqtt.config.stale_after_seconds,
        drain_seconds=mqtt.config.shutdown_drain_seconds,
    )
    await stack.enter_async_context(webhooks)
    mqtt.also_wake(webhooks.wake)
    if fleet is not None:
        fleet.outbox.wake_on_add(webhooks.wake)
    metrics.watch_webhooks(webhooks.stats)


async def _watch_storage(
    metrics: Metrics, spool: Spool, alerting: Alerting, sink: MqttAlerts | JsonLinesAlerts
) -> None:
    metrics.watch_spool(
        lambda: spool.depth,
        spool.limit,
        lambda: {**dict.fromkeys(SPOOLED_KINDS, 0), **spool.lost},
        lambda: alerting.evidence_not_kept,
    )
    metrics.watch_alerts(lambda: sink.raised.counts)
    if alerting.evidence is not None:
        store = alerting.evidence
        await asyncio.to_thread(store.measure)  # then kept current by retention
        metrics.watch_evidence(lambda: store.disk_bytes)


def _watch_engine(engine: Engine, metrics: Metrics) -> None:
    if isinstance(engine, LocalEngine):
        local = engine
        metrics.watch_local_engine(lambda: local.counters.to_json())
    if isinstance(engine, GatedEngine) and isinstance(engine.inner, AmsEngine):
        ams, gated = engine.inner, engine
        metrics.watch_ams(lambda: ams.client.outcomes, lambda: gated.seconds_saved)


SPOOLED_KINDS = ("result", "alert", "event", "journal", "history", "attached")
"""The kinds of write that go through the spool (always present in ``/metrics``)."""

_STORAGE_EVENTS = {
    SpoolState.UNWRITABLE: InstanceEventKind.STORAGE_UNWRITABLE,
    SpoolState.RESTORED: InstanceEventKind.STORAGE_RESTORED,
    SpoolState.LOST: InstanceEventKind.WRITES_LOST,
}


class _HealthReport:
    """Instance health events: a supervised loop crashed (counted too), the state disk
    refused or takes writes again, a clip could not be kept as evidence."""

    def __init__(self, instance_id: str, metrics: Metrics, sink: MqttAlerts | JsonLinesAlerts):
        self._instance_id = instance_id
        self._metrics = metrics
        self._sink = sink

    async def crashed(self, loop: str, exc: BaseException) -> None:
        self._metrics.loop_restarts.labels(loop).inc()
        await self._event(InstanceEventKind.LOOP_RESTARTED, loop, f"{type(exc).__name__}: {exc}")

    async def storage(self, state: SpoolState, detail: str) -> None:
        await self._event(_STORAGE_EVENTS[state], "state.spool", detail)

    async def evidence_not_kept(
        self, segment: Segment | SegmentInfo, why: str, alert_id: str | None
    ) -> None:
        await self._event(
            InstanceEventKind.EVIDENCE_NOT_KEPT, f"stream[{segment.stream_id}]", why, alert_id
        )

    async def _event(
        self, kind: InstanceEventKind, loop: str, detail: str, message_id: str | None = None
    ) -> None:
        event = InstanceEvent(
            self._instance_id, kind, datetime.now(UTC), loop, detail, message_id=message_id
        )
        await self._sink.instance_event(event)
