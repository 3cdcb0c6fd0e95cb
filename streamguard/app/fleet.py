"""Fleet mode's part of the composition root: the shared PostgreSQL and what lives there.

    PostgreSQL (pool, migrations) → this instance joins the fleet → shared results (fenced),
    shared outbox, shared desired set, shared feedback and incident history, shared AMS
    task tracking

What is not shared (attached streams' alert fields, the readiness heartbeat) stays in the
instance's own SQLite file beside it; docs/fleet.md says what that means.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from streamguard.app.notify import Notifier
from streamguard.app.reload import Reloaded, warn_restart_sections
from streamguard.config import Config
from streamguard.config.loading import load_config
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import ConfigError
from streamguard.moderation.profiles import Profiles
from streamguard.state.attached import AttachedStream, AttachedStreams
from streamguard.state.db import StateError
from streamguard.state.desired import Origin
from streamguard.state.postgres.ams_tasks import PgTaskStore
from streamguard.state.postgres.changes import ConfigChanges
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.evidence import PgEvidenceClips, evidence_url_key
from streamguard.state.postgres.feedback import PgFeedback
from streamguard.state.postgres.fleet import Fence, Fleet
from streamguard.state.postgres.incidents import PgIncidentHistory
from streamguard.state.postgres.journal import PgIncidentJournal
from streamguard.state.postgres.outbox import PgOutbox
from streamguard.state.postgres.results import PgResults
from streamguard.state.postgres.units import WriteBatches
from streamguard.state.spool import Spool

__all__ = [
    "FleetState",
    "SharedStreamMemory",
    "open_fleet_state",
    "reload_fleet",
    "sync_config_streams",
]

log = logging.getLogger("streamguard.fleet")


@dataclass(frozen=True, slots=True)
class FleetState:
    """The shared database and this instance's stores on it."""

    db: PgDatabase
    fleet: Fleet
    results: PgResults
    outbox: PgOutbox
    desired: PgDesiredStreams
    feedback: PgFeedback
    incidents: PgIncidentHistory
    changes: ConfigChanges
    """Config changes of streams running elsewhere, kept for their owners."""
    clips: PgEvidenceClips
    """Evidence clips and frame pictures, served by any instance."""
    evidence_url_key: bytes
    """The fleet's key for signed evidence URLs."""
    journal: PgIncidentJournal
    """Open incidents of the fleet (a live instance ends a dead one's)."""
    ams_tasks: PgTaskStore
    batches: WriteBatches
    """Units of work: one transaction per segment's writes, batched over the streams."""


async def open_fleet_state(stack: AsyncExitStack, config: Config, spool: Spool) -> FleetState:
    """Connect (migrating the schema), join the fleet, and build the shared stores."""
    # The pool logs every failed reconnection while the database is away; the spool and
    # the lease loop already say so, once per episode and per turn.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    assert config.state.url is not None, "fleet mode needs state.url"
    password = config.state.password
    db = await stack.enter_async_context(
        PgDatabase(
            config.state.url,
            password=password.get_secret_value() if password is not None else None,
        )
    )
    instance = config.instance.id
    fleet = Fleet(
        db, instance, lease_seconds=config.state.lease_seconds, capacity=config.state.capacity
    )
    await fleet.join()
    lease = config.state.lease_seconds
    # A task of a stream nobody holds is settled after a lease length without a holder.
    tasks = PgTaskStore(db, instance, fleet.fence, grace=lease, scan_every=lease / 3)

    def fence(stream_id: str) -> Fence | None:
        return fleet.fence(stream_id) or tasks.orphan_fence(stream_id)

    results = PgResults(db, fence, spool)
    batches = await stack.enter_async_context(
        WriteBatches(
            db, window=config.state.write_batch_seconds, writes=spool, on_stale=results.stale
        )
    )
    return FleetState(
        db,
        fleet,
        results,
        PgOutbox(db, instance, dead_after=lease, fences=fleet.fence),
        PgDesiredStreams(db),
        PgFeedback(db),
        PgIncidentHistory(db),
        ConfigChanges(db, instance),
        PgEvidenceClips(
            db,
            keep_seconds=config.evidence.keep_days * 86_400,
            max_bytes=int(config.evidence.max_megabytes * 1_000_000),
        ),
        await evidence_url_key(db),
        PgIncidentJournal(db, instance, alive_within=config.state.lease_seconds),
        tasks,
        batches,
    )


class SharedStreamMemory:
    """What a late verdict's alert says of its stream in fleet mode: the shared desired
    set's config (the stream may have run on another instance), else what this instance
    kept of it (a stream detached since)."""

    def __init__(self, desired: PgDesiredStreams, local: AttachedStreams) -> None:
        self._desired = desired
        self._local = local

    async def get(self, stream_id: str) -> AttachedStream | None:
        """The stream's room, profile and metadata, or None when nobody kept it."""
        for lease in await self._desired.leases(stream_id):
            try:
                stream = StreamConfig.model_validate(lease.config)
            except ValidationError:
                break
            return AttachedStream(stream_id, stream.room_id, stream.profile, stream.metadata)
        return await self._local.get(stream_id)


async def sync_config_streams(state: FleetState, config: Config) -> None:
    """Make the file's streams the desired set's ``config`` streams: every instance reads
    the same file, and whichever holds a stream's lease runs it."""
    wanted = {stream.id for stream in config.streams}
    for stream in config.streams:
        await state.desired.put(stream, Origin.CONFIG)
    for kept in await state.desired.all(Origin.CONFIG):
        if kept.stream_id not in wanted:
            await state.desired.remove(kept.stream_id)


async def reload_fleet(
    path: Path, old: Config, state: FleetState, profiles: Profiles, notifier: Notifier
) -> Reloaded:
    """SIGHUP in fleet mode: profiles apply here, the file's streams go to the desired set
    (a changed stream's owner applies its new config at its next turn: ``RemoteChanges``).
    Refused, the config in force unchanged, when the file is invalid or the shared database
    unreachable."""
    notifier.reloading()
    summary = "reload failed"
    try:
        reloaded = await _reload_fleet(path, old, state, profiles)
        summary = reloaded.summary
    finally:
        # Whatever happened, systemd must not be left waiting in "reloading".
        notifier.reloaded(summary)
    return reloaded


async def _reload_fleet(path: Path, old: Config, state: FleetState, profiles: Profiles) -> Reloaded:
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        log.error("reload refused, config unchanged: %s", exc)
        return Reloaded(old, False, f"reload refused: {len(exc.problems)} problem(s)")
    warn_restart_sections(old, new)
    # New profile names are known during the sync (a stream claimed meanwhile can run);
    # the profiles in force change only once the desired set took the file.
    profiles.replace({**new.profiles, **old.profiles})
    try:
        await sync_config_streams(state, new)
    except StateError as exc:
        log.error("reload refused, config unchanged: %s", exc)
        return Reloaded(old, False, "reload refused: state database unreachable")
    profiles.replace(new.profiles)
    summary = f"reloaded: {len(new.streams)} stream(s) in the file"
    log.info(summary)
    config = old.model_copy(update={"profiles": new.profiles, "streams": new.streams})
    return Reloaded(config=config, ok=True, summary=summary)
