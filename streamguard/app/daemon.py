"""``streamguard run``: the composition root — every component built once, started in order,
stopped in reverse, background loops supervised in one task group.

    supervisor → database → alert sink (outbox + MQTT) → alerting, outcomes, late verdicts
    → engine → streams → control API

Streams attached through the API are kept in the database and attached again at start,
after the config file's (``Streams.restore``; an id in the file wins).

SIGTERM/SIGINT: stop ingest, judge every partial tail (up to ``instance.shutdown_seconds``),
end open incidents, flush the outbox, exit 0. SIGHUP: reload the config file and apply only
what changed in streams and profiles (``app.reload``). A background loop that raises is
restarted by the supervisor; only a signal or a start-up error stops the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamguard.api.console import ConsoleSetup
from streamguard.api.image import MAX_IMAGE_BYTES, image_route
from streamguard.api.image_urls import ImageFetcher
from streamguard.api.routes import Check, build_api
from streamguard.api.text import text_route
from streamguard.api.try_it import TryIt
from streamguard.app.components import Components, open_components
from streamguard.app.fleet import FleetState, reload_fleet, sync_config_streams
from streamguard.app.notify import Notifier
from streamguard.app.reload import ReloadResults, apply_reload, reload_result_path
from streamguard.app.stream_health import StreamHealth
from streamguard.bus.sink import MqttAlerts
from streamguard.config import Config
from streamguard.config.engine import LocalEngineConfig
from streamguard.core.metrics import Metrics
from streamguard.core.serving import start_site
from streamguard.core.status import StreamState
from streamguard.engines.local.moderator import TextModerator
from streamguard.state.desired import KeptStreams
from streamguard.state.results import ResultStore
from streamguard.streams.fleet import FleetDesired, FleetMember, FleetPlacements, RemoteChanges
from streamguard.streams.placement import LocalPlacements, Placements
from streamguard.streams.registry import Streams

__all__ = ["Daemon"]

log = logging.getLogger("streamguard.daemon")

PRUNE_EVERY = 3600.0


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
        self._member: FleetMember | None = None
        self._text: TextModerator | None = None

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
        async with AsyncExitStack() as stack:
            parts = await open_components(
                stack,
                config,
                metrics=self.metrics,
                state_dir=config.state_path(),
                join_fleet=config.state.fleet,
            )
            streams = await stack.enter_async_context(self._streams(parts))
            if parts.fleet is None:
                # The file's streams first: an id in the file wins over one kept from the
                # API. Both before the API serves, so no request races the restore.
                for stream in config.streams:
                    await streams.attach(stream, from_api=False)
                await streams.restore()
            else:
                self._member = await self._join_fleet(parts.fleet, parts, streams)
            await self._start_api(stack, parts, streams)
            parts.supervisor.start("systemd.watchdog", self.notifier.watchdog)
            parts.supervisor.start(
                "state.retention",
                lambda: _prune_forever(parts.results, config.instance.results_keep_days),
            )
            status = f"{_count(streams)}; API on {config.api.host}:{self.api_port}"
            log.info("ready: %s", status, extra={"api_port": self.api_port})
            self.notifier.ready(status)
            await self._wait_for_stop(streams, parts)
            await self._shutdown(streams)
        log.info("stopped")

    async def _join_fleet(
        self, fleet: FleetState, parts: Components, streams: Streams
    ) -> FleetMember:
        """Fleet mode: the file's streams join the shared desired set, and the loop
        ``fleet.leases`` runs this instance's share of it."""
        await sync_config_streams(fleet, self.config)
        member = FleetMember(
            fleet.fleet,
            streams,
            changes=RemoteChanges(fleet.changes, streams),
            adopt_orphans=parts.alerting.end_orphans,
            settle=fleet.batches.drain,
        )
        fleet.results.on_stale = member.stale
        self.metrics.watch_fleet(lambda: member.gauges)
        parts.supervisor.start("fleet.leases", member.run)
        return member

    def _streams(self, parts: Components) -> Streams:
        config, health = self.config, StreamHealth(parts.sink, self.config.ingest.silent_minutes)
        desired: KeptStreams = parts.desired
        if parts.fleet is not None:
            desired = FleetDesired(parts.fleet.fleet, parts.fleet.desired)
        streams = Streams(
            ingest=config.ingest,
            engine=parts.engine,
            clip_dir=config.state_path() / "clips",
            on_result=lambda stream, result: parts.outcomes.handle(
                stream, result.segment, result.verdict, result.clip.path if result.clip else None
            ),
            on_state=health.changed,
            metrics=self.metrics,
            api_allows_files=config.api.allow_local_files,
            profiles=parts.profiles,
            on_attach=lambda stream: parts.attached.remember([stream]),
            supervisor=parts.supervisor,
            desired=desired,
            image_engine=parts.image_engine,
            on_frame=lambda stream, result: parts.outcomes.handle_frame(
                stream, result.frame.info(), result.verdict, result.jpeg
            ),
        )
        self.metrics.watch_streams(lambda: [r.state.value for r in streams.reports()])
        self.metrics.watch_stream_details(lambda: _stream_details(streams))
        return streams

    async def _start_api(self, stack: AsyncExitStack, parts: Components, streams: Streams) -> None:
        config = self.config
        readiness: dict[str, Check] = {
            "database": parts.heartbeat.check,
            "storage": parts.spool.check,  # false while writes wait for a full disk
        }
        if parts.fleet is not None:
            readiness["fleet_database"] = parts.fleet.db.check
        if isinstance(parts.sink, MqttAlerts):
            readiness["bus"] = _bus_check(parts.sink)
        token = config.api.token.get_secret_value() if config.api.token else None
        if token is None:
            log.warning(
                "the control API has no token: whoever reaches %s:%s may attach, change and "
                "detach streams and read results (set the api-token credential or "
                "$STREAMGUARD_API_TOKEN)",
                config.api.host,
                config.api.port,
            )
        # The text API's judge: its example libraries embedded and fitted now, off the loop
        # (a broken file a profile names stops the start with the profile's key).
        self._text = TextModerator(_text_config(config))
        await asyncio.to_thread(self._text.load, parts.profiles)
        app = build_api(
            streams=streams,
            results=parts.results,
            feedback=parts.feedback,
            registry=self.metrics.registry,
            readiness=readiness,
            token=token,
            text=text_route(self._text, parts.profiles),
            image=None
            if parts.image_engine is None
            else image_route(
                parts.image_engine,
                parts.profiles,
                fetcher=ImageFetcher(config.ingest.addresses, MAX_IMAGE_BYTES),
            ),
            console=_console(config, parts),
            try_it=TryIt.of(config, parts.engine, parts.outcomes, parts.profiles, streams.check),
            storage=parts.spool.check,
            placements=_placements(config, parts),
        )
        runner, self.api_port = await start_site(app, config.api.host, config.api.port)
        stack.push_async_callback(runner.cleanup)

    async def _wait_for_stop(self, streams: Streams, parts: Components) -> None:
        results = ReloadResults(reload_result_path(self.config.state_path()))
        while True:
            await self._signalled.wait()
            self._signalled.clear()
            if self._stop.is_set():
                return
            if self._reload.is_set():
                self._reload.clear()
                if parts.fleet is not None:
                    reloaded = await reload_fleet(
                        self.config_path, self.config, parts.fleet, parts.profiles, self.notifier
                    )
                    if reloaded.ok and self._member is not None:
                        running = set(streams.running())
                        held = [r.config for r in streams.reports() if r.config.id not in running]
                        await self._member.retry_held(held)
                else:
                    reloaded = await apply_reload(
                        self.config_path,
                        self.config,
                        streams,
                        parts.profiles,
                        self.notifier,
                        self._text,
                    )
                self.config = reloaded.config
                await results.write(reloaded)

    async def _shutdown(self, streams: Streams) -> None:
        """Stop ingest and judge every partial tail, within the shutdown deadline."""
        self.notifier.stopping("judging partial tails, flushing alerts")
        log.info("stopping")
        if self._member is not None:
            await self._member.leave()  # claims nothing more
        streams.drain()
        streams.stop_all()
        deadline = self.config.instance.shutdown_seconds
        try:
            await asyncio.wait_for(streams.wait_stopped(), deadline)
        except TimeoutError:
            log.error(
                "shutdown deadline of %.0f s passed with segments in flight; "
                "recording them as failed",
                deadline,
            )
            await streams.cancel_all()
        if self._member is not None:
            await self._member.release_all()  # tails recorded: the others take over now


def _count(streams: Streams) -> str:
    """``N stream(s)``, and how many of them cannot run, for the ready status."""
    reports = streams.reports()
    failed = sum(1 for r in reports if r.state is StreamState.FAILED)
    return f"{len(reports)} stream(s)" + (f", {failed} failed" if failed else "")


def _stream_details(streams: Streams) -> dict[str, tuple[str, float | None]]:
    """Each stream's state and seconds since its last audio, for ``/metrics``."""
    now = datetime.now(UTC)
    return {
        r.stream_id: (
            r.state.value,
            (now - r.tally.last_audio_at).total_seconds() if r.tally.last_audio_at else None,
        )
        for r in streams.reports()
    }


def _text_config(config: Config) -> LocalEngineConfig:
    """Text is judged by the local engine's libraries, whichever engine judges audio."""
    return config.engine if isinstance(config.engine, LocalEngineConfig) else LocalEngineConfig()


async def _prune_forever(results: ResultStore, keep_days: float) -> None:
    """Delete results past their retention now and then every hour."""
    while True:
        removed = await results.prune(datetime.now(UTC) - timedelta(days=keep_days))
        if removed:
            log.info("retention: %d result(s) older than %g days deleted", removed, keep_days)
        await asyncio.sleep(PRUNE_EVERY)


def _console(config: Config, parts: Components) -> ConsoleSetup:
    """The console's setup: in fleet mode on the shared history, clips and URL key."""
    fleet = parts.fleet
    if fleet is None:
        return ConsoleSetup.of(config, parts.db)
    return ConsoleSetup.of(
        config,
        parts.db,
        fleet.incidents,
        shared_clips=fleet.clips,
        evidence_url_key=fleet.evidence_url_key,
    )


def _placements(config: Config, parts: Components) -> Placements:
    """Where the API says streams run: here (one machine), or by the fleet's leases."""
    if parts.fleet is None:
        return LocalPlacements(config.instance.id)
    return FleetPlacements(parts.fleet.fleet, parts.fleet.desired, parts.fleet.changes)


def _bus_check(mqtt: MqttAlerts) -> Check:
    async def check() -> tuple[bool, str]:
        health = mqtt.health()
        return health.ok, health.reason

    return check
