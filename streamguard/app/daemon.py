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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamguard.api.routes import Check, build_api
from streamguard.app.notify import Notifier
from streamguard.bus.sink import JsonLinesAlerts, MqttAlerts
from streamguard.config import Config, load_config
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import ConfigError, StreamGuardError
from streamguard.core.metrics import Metrics
from streamguard.core.serving import start_site
from streamguard.core.status import StreamEvent, StreamEventKind, StreamState, StreamStatus
from streamguard.engines.ams.engine import AmsEngine
from streamguard.engines.factory import open_engine
from streamguard.engines.gated import GatedEngine
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.late import LateVerdicts
from streamguard.moderation.policy import decide
from streamguard.moderation.sink import AlertSink
from streamguard.state.db import Database
from streamguard.state.feedback import Feedback
from streamguard.state.outbox import MessageKind, OutboxMessage
from streamguard.state.results import Results
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.runner import Streams

__all__ = ["Daemon"]

log = logging.getLogger("streamguard.app")


class Daemon:
    """The whole daemon for one config file."""

    def __init__(self, config_path: Path, config: Config, notifier: Notifier | None = None):
        self.config_path = config_path
        self.config = config
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._signalled = asyncio.Event()  # set with either of the two above
        self.api_port: int | None = None

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (SIGHUP reloads); return the exit code, 0 when clean."""
        loop = asyncio.get_running_loop()
        for signum, event in (
            (signal.SIGTERM, self._stop),
            (signal.SIGINT, self._stop),
            (signal.SIGHUP, self._reload),
        ):
            loop.add_signal_handler(signum, self._on_signal, event)
        try:
            await self._serve()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        return 0

    def _on_signal(self, event: asyncio.Event) -> None:
        event.set()
        self._signalled.set()

    async def _serve(self) -> None:
        config = self.config
        state_dir = config.state_path()
        async with AsyncExitStack() as stack:
            db = await stack.enter_async_context(Database(state_dir / "streamguard.db"))
            results = Results(db)
            await results.open()
            feedback = Feedback(db)
            await feedback.open()
            await db.migrate(
                "daemon", ["CREATE TABLE daemon_heartbeat (id INTEGER PRIMARY KEY, at TEXT)"]
            )
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
            late = LateVerdicts(
                db, profiles=lambda: self.config.profiles, results=results, alerting=alerting
            )
            await late.open()
            # Before the engine starts: a late verdict of a configured stream is judged as
            # configured now.
            await late.remember(config.streams)
            self.metrics.watch_late(lambda: late.handled)

            engine = await stack.enter_async_context(
                open_engine(config.engine, db=db, state_dir=state_dir, on_late_verdict=late)
            )
            if isinstance(engine, GatedEngine) and isinstance(engine.inner, AmsEngine):
                ams = engine.inner
                gated = engine
                self.metrics.watch_ams(lambda: ams.client.outcomes, lambda: gated.seconds_saved)

            async def on_result(stream: StreamConfig, result: SegmentResult) -> None:
                decision = decide(self.config.profiles[stream.profile], stream, result.verdict)
                await results.record(
                    stream.room_id, result.segment, result.verdict, decision.risk.value
                )
                clip = result.clip.path if result.clip else None
                await alerting.handle(stream, result.segment, result.verdict, clip)

            health = _StreamHealth()

            async def on_state(stream: StreamConfig, state: StreamState, error: str | None) -> None:
                # The retained status first: it is what a consumer sees as current.
                await sink.status(
                    StreamStatus(
                        stream_id=stream.id,
                        room_id=stream.room_id,
                        state=state,
                        since=datetime.now(UTC),
                        last_error=error,
                    )
                )
                event = health.event(stream.id, state)
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
                    profiles=lambda: self.config.profiles,
                    on_attach=lambda stream: late.remember([stream]),
                )
            )
            self.metrics.watch_streams(lambda: [s["state"] for s in streams.statuses()])
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
                retention = group.create_task(
                    _prune_forever(results, config.instance.results_keep_days),
                    name="state.retention",
                )
                await self._wait_for_stop(streams, alerting)
                self.notifier.stopping("judging partial tails, flushing alerts")
                log.info("stopping")
                streams.drain()
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
                retention.cancel()
        log.info("stopped")

    async def _wait_for_stop(self, streams: Streams, alerting: Alerting) -> None:
        while True:
            await self._signalled.wait()
            self._signalled.clear()
            if self._stop.is_set():
                return
            if self._reload.is_set():
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
        orphaned = sorted(
            status["id"]
            for status in streams.statuses()
            if status["profile"] not in new.profiles
            and status["id"] not in {s.id for s in new.streams}
        )
        if orphaned:
            log.error("reload refused: streams %s use profiles the new config drops", orphaned)
            self.notifier.status("reload refused: profiles in use were removed")
            return
        for section in ("instance", "ingest", "engine", "mqtt", "evidence", "api"):
            if getattr(old, section) != getattr(new, section):
                log.warning("reload: [%s] changed; it takes effect after a restart", section)
        alerting.profiles = new.profiles
        self.config = old.model_copy(update={"profiles": new.profiles})
        wanted = {s.id: s for s in new.streams}
        applied = {s.id: s for s in old.streams}
        failed = 0
        for stream_id in applied.keys() - wanted.keys():
            await streams.detach(stream_id)
            del applied[stream_id]
        for stream_id, stream in wanted.items():
            if applied.get(stream_id) == stream:
                continue
            try:  # each stream on its own: one refusal does not stop the others
                await streams.change(stream, from_api=False)
            except StreamGuardError as exc:
                failed += 1
                log.error("reload: stream %s not applied: %s", stream_id, exc)
                continue
            applied[stream_id] = stream
        # What was applied, so the next reload diffs against reality and retries the rest.
        self.config = self.config.model_copy(update={"streams": list(applied.values())})
        summary = f"reloaded: {len(applied)} stream(s)" + (f", {failed} refused" if failed else "")
        log.info(summary)
        self.notifier.status(summary)


PRUNE_EVERY = 3600.0


async def _prune_forever(results: Results, keep_days: float) -> None:
    """Delete results past their retention now and then every hour."""
    while True:
        removed = await results.prune(datetime.now(UTC) - timedelta(days=keep_days))
        if removed:
            log.info("retention: %d result(s) older than %g days deleted", removed, keep_days)
        await asyncio.sleep(PRUNE_EVERY)


class _StreamHealth:
    """Turns stream state changes into health events: down once when audio stops, restored
    once when it is back (whatever states lie between), silent when speech stops."""

    def __init__(self) -> None:
        self._down: set[str] = set()

    def event(self, stream_id: str, state: StreamState) -> StreamEventKind | None:
        if state.down:
            if stream_id in self._down:
                return None
            self._down.add(stream_id)
            return StreamEventKind.DOWN
        if state is StreamState.ONLINE and stream_id in self._down:
            self._down.discard(stream_id)
            return StreamEventKind.RESTORED
        if state is StreamState.SILENT:
            return StreamEventKind.SILENT
        if state.finished:
            self._down.discard(stream_id)
        return None


def _database_check(db: Database) -> Check:
    async def check() -> tuple[bool, str]:
        try:
            # A real write to the database file: a full or read-only disk fails here.
            await db.run(
                lambda conn: conn.execute(
                    "INSERT OR REPLACE INTO daemon_heartbeat (id, at) VALUES (1, ?)",
                    (datetime.now(UTC).isoformat(),),
                )
            )
        except StreamGuardError as exc:
            return False, str(exc)
        return True, "writable"

    return check


def _bus_check(mqtt: MqttAlerts) -> Check:
    async def check() -> tuple[bool, str]:
        health = mqtt.health()
        return health.ok, health.reason

    return check
