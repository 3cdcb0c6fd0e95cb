"""``streamguard run``: every component, started in order and stopped in reverse.

    database → alert sink (outbox + MQTT) → alerting (policy, incidents, evidence)
    → engine → streams → control API

SIGTERM/SIGINT: stop ingest, judge every partial tail (up to ``instance.shutdown_seconds``),
end open incidents, flush the outbox, exit 0. SIGHUP: reload the config file and apply only
what changed in streams and profiles; anything else is reported as needing a restart.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from streamguard.alerts.alerting import Alerting
from streamguard.alerts.evidence import EvidenceStore
from streamguard.alerts.outbox import MessageKind, OutboxMessage
from streamguard.alerts.policy import decide
from streamguard.alerts.sink import AlertSink, JsonLinesAlerts, MqttAlerts
from streamguard.alerts.status import StreamEvent, StreamEventKind, StreamState, StreamStatus
from streamguard.ams.engine import AmsEngine
from streamguard.config import Config, load_config
from streamguard.config.streams import StreamConfig
from streamguard.daemon.api import Check, build_api
from streamguard.daemon.feedback import Feedback
from streamguard.daemon.metrics import Metrics
from streamguard.daemon.notify import Notifier
from streamguard.daemon.streams import Streams
from streamguard.engine.factory import open_engine
from streamguard.engine.gated import GatedEngine
from streamguard.engine.verdict import Verdict
from streamguard.errors import ConfigError, StreamGuardError
from streamguard.pipeline import SegmentResult
from streamguard.serving import start_site
from streamguard.state.db import Database
from streamguard.state.results import Results

__all__ = ["Daemon"]

log = logging.getLogger("streamguard.daemon")

_BUS_STATES = {
    "connecting": StreamState.RECONNECTING,
    "online": StreamState.ONLINE,
    "reconnecting": StreamState.RECONNECTING,
    "restarting": StreamState.RECONNECTING,
    "silent": StreamState.SILENT,
    "ended": StreamState.OFFLINE,
    "stopped": StreamState.OFFLINE,
    "failed": StreamState.OFFLINE,
}


class Daemon:
    """The whole daemon for one config file."""

    def __init__(self, config_path: Path, config: Config, notifier: Notifier | None = None):
        self.config_path = config_path
        self.config = config
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self.api_port: int | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum, handler in (
            (signal.SIGTERM, self._stop.set),
            (signal.SIGINT, self._stop.set),
            (signal.SIGHUP, self._reload.set),
        ):
            loop.add_signal_handler(signum, handler)
        try:
            await self._serve()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        return 0

    async def _serve(self) -> None:
        config = self.config
        state_dir = config.state_path()
        async with AsyncExitStack() as stack:
            db = await stack.enter_async_context(Database(state_dir / "streamguard.db"))
            results = Results(db)
            await results.open()
            feedback = Feedback(db)
            await feedback.open()
            sink: AlertSink
            readiness: dict[str, Check] = {"database": _database_check(db)}
            if config.mqtt is not None:

                def acked(messages: Sequence[OutboxMessage]) -> None:
                    alerts = sum(1 for m in messages if m.kind is MessageKind.ALERT)
                    self.metrics.alerts_published.inc(alerts)

                mqtt = await stack.enter_async_context(
                    MqttAlerts(config.mqtt, db, config.instance.id, on_acked=acked)
                )
                sink = mqtt
                self.metrics.watch_outbox(
                    lambda: mqtt.health().backlog, lambda: mqtt.health().oldest_age or 0.0
                )
                readiness["bus"] = _bus_check(mqtt)
            else:
                sink = JsonLinesAlerts()
            evidence = EvidenceStore.from_config(config.evidence, state_dir)
            alerting = await stack.enter_async_context(
                Alerting(
                    config.profiles,
                    sink,
                    instance_id=config.instance.id,
                    evidence=evidence,
                    db=db,
                )
            )
            known: dict[str, StreamConfig] = {s.id: s for s in config.streams}

            async def on_late_verdict(verdict: Verdict) -> None:
                stream_id = await results.stream_of(verdict.segment_id)
                stream = known.get(stream_id or "")
                risk = "none"
                if stream is not None and stream.profile in self.config.profiles:
                    risk = decide(self.config.profiles[stream.profile], stream, verdict).risk.value
                if not await results.replace_verdict(verdict, risk):
                    log.warning("late verdict for unknown segment %s", verdict.segment_id)

            engine = await stack.enter_async_context(
                open_engine(
                    config.engine, db=db, state_dir=state_dir, on_late_verdict=on_late_verdict
                )
            )
            if isinstance(engine, GatedEngine) and isinstance(engine.inner, AmsEngine):
                ams = engine.inner
                self.metrics.watch_ams(lambda: ams.client.outcomes)

            async def on_result(stream: StreamConfig, result: SegmentResult) -> None:
                known[stream.id] = stream
                decision = decide(self.config.profiles[stream.profile], stream, result.verdict)
                await results.record(
                    stream.room_id, result.segment, result.verdict, decision.risk.value
                )
                clip = result.clip.path if result.clip else None
                await alerting.handle(stream, result.segment, result.verdict, clip)

            last_states: dict[str, str] = {}

            async def on_state(stream: StreamConfig, state: str, error: str | None) -> None:
                before = last_states.get(stream.id)
                last_states[stream.id] = state
                if before is not None:
                    self.metrics.streams.labels(before).dec()
                self.metrics.streams.labels(state).inc()
                event = _health_event(before, state)
                if event is not None:
                    await sink.event(
                        StreamEvent(
                            stream_id=stream.id,
                            room_id=stream.room_id,
                            kind=event,
                            at=datetime.now(UTC),
                            detail=error or "",
                            silent_seconds=config.ingest.silent_minutes * 60
                            if event is StreamEventKind.SILENT
                            else None,
                        )
                    )
                await sink.status(
                    StreamStatus(
                        stream_id=stream.id,
                        room_id=stream.room_id,
                        state=_BUS_STATES.get(state, StreamState.OFFLINE),
                        since=datetime.now(UTC),
                        last_error=error,
                    )
                )

            streams = await stack.enter_async_context(
                Streams(
                    ingest=config.ingest,
                    engine=engine,
                    clip_dir=state_dir / "clips",
                    on_result=on_result,
                    on_state=on_state,
                    metrics=self.metrics,
                    api_allows_files=config.api.allow_local_files,
                    biz_type=lambda stream: self.config.profiles[stream.profile].biz_type,
                )
            )
            token = config.api.token.get_secret_value() if config.api.token else None
            app = build_api(
                streams=streams,
                results=results,
                feedback=feedback,
                registry=self.metrics.registry,
                readiness=readiness,
                token=token,
            )
            runner, self.api_port = await start_site(app, config.api.host, config.api.port)
            stack.push_async_callback(runner.cleanup)
            for stream in config.streams:
                await streams.attach(stream, from_api=False)
            status = f"{len(config.streams)} stream(s); API on {config.api.host}:{self.api_port}"
            log.info("ready: %s", status, extra={"api_port": self.api_port})
            self.notifier.ready(status)
            async with asyncio.TaskGroup() as group:
                watchdog = group.create_task(self.notifier.watchdog(), name="systemd.watchdog")
                await self._wait_for_stop(streams, alerting)
                self.notifier.stopping("judging partial tails, flushing alerts")
                log.info("stopping")
                streams.stop_all()
                try:
                    await asyncio.wait_for(streams.wait_stopped(), config.instance.shutdown_seconds)
                except TimeoutError:
                    log.error(
                        "shutdown deadline of %.0f s passed with segments in flight; "
                        "recording them as failed",
                        config.instance.shutdown_seconds,
                    )
                    await streams.cancel_all()
                watchdog.cancel()
        log.info("stopped")

    async def _wait_for_stop(self, streams: Streams, alerting: Alerting) -> None:
        while not self._stop.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            reload = asyncio.ensure_future(self._reload.wait())
            try:
                await asyncio.wait([stop, reload], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                reload.cancel()
                await asyncio.gather(stop, reload, return_exceptions=True)
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                await self._apply_reload(streams, alerting)

    async def _apply_reload(self, streams: Streams, alerting: Alerting) -> None:
        """Re-read the config; apply stream and profile changes, leave the rest alone."""
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            log.error("reload refused, config unchanged: %s", exc)
            self.notifier.status(f"reload refused: {len(exc.problems)} problem(s)")
            return
        old = self.config
        for section in ("instance", "ingest", "engine", "mqtt", "evidence", "api"):
            if getattr(old, section) != getattr(new, section):
                log.warning("reload: [%s] changed; it takes effect after a restart", section)
        alerting.profiles = new.profiles
        self.config = old.model_copy(update={"profiles": new.profiles, "streams": new.streams})
        wanted = {s.id: s for s in new.streams}
        before = {s.id: s for s in old.streams}
        try:
            for stream_id in before.keys() - wanted.keys():
                await streams.detach(stream_id)
            for stream_id, stream in wanted.items():
                if stream_id not in before:
                    await streams.attach(stream, from_api=False)
                elif before[stream_id] != stream:
                    await streams.change(stream, from_api=False)
        except StreamGuardError as exc:
            log.error("reload: %s", exc)
        log.info("reloaded: %d stream(s)", len(wanted))
        self.notifier.status(f"reloaded: {len(wanted)} stream(s)")


def _health_event(before: str | None, state: str) -> StreamEventKind | None:
    """The health event of a stream going from ``before`` to ``state``, if any."""
    up = ("online", "silent")
    if before in up and state in ("reconnecting", "restarting", "failed"):
        return StreamEventKind.DOWN
    if state == "online" and before in ("reconnecting", "restarting"):
        return StreamEventKind.RESTORED
    if state == "silent":
        return StreamEventKind.SILENT
    return None


def _database_check(db: Database) -> Check:
    async def check() -> tuple[bool, str]:
        try:
            await db.run(lambda conn: conn.execute("CREATE TEMP TABLE IF NOT EXISTS ping (x)"))
        except StreamGuardError as exc:
            return False, str(exc)
        return True, "writable"

    return check


def _bus_check(mqtt: MqttAlerts) -> Check:
    async def check() -> tuple[bool, str]:
        health = mqtt.health()
        return health.ok, health.reason

    return check
