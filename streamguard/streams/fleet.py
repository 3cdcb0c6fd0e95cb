"""Fleet mode: this instance's part in running the fleet's streams, by lease.

``FleetMember.run`` is the supervised loop ``fleet.leases``: every third of a lease it
renews (heartbeat + every held lease, and what the rest of the turn needs to know, in one
statement), stops the streams it lost (taken over while it was
paused or cut off, or detached), claims free and expired streams up to its share and runs
them, and hands back what is over its share when the fleet grew, at most ``shed_per_turn``
streams a turn (paced: a grown fleet does not stop every excess tail at once). A write
refused as stale (``stale``) stops its stream at the next turn, without waiting for the
renewal. Each turn also applies the config changes made through another instance's API to
the streams held here (``state.postgres.changes``: one query a turn).

``leave`` is the SIGTERM path: stop claiming (``drain``), and once the daemon stopped its
streams (their tails judged and recorded under their leases), release every lease so the
others take the streams over at their next claim, not a lease length later.

``FleetDesired`` is what the registry keeps API streams in, in fleet mode: an attach is kept
in the shared desired set and held here at once; nothing is restored at start (the leases
bring streams back, wherever they run).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from streamguard.config.streams import StreamConfig
from streamguard.core.errors import StreamGuardError
from streamguard.state.db import StateError
from streamguard.state.desired import DesiredStream, Origin
from streamguard.state.postgres.changes import ConfigChanges, Kept, OwnedStream
from streamguard.state.postgres.desired import PgDesiredStreams, StreamLease
from streamguard.state.postgres.fleet import Fleet, Lease
from streamguard.streams.placement import PendingChange, PlacedStream, Placement, Where
from streamguard.streams.refusals import ChangedMeanwhile, StreamConflict
from streamguard.streams.registry import ConfiguredInFile
from streamguard.streams.report import StreamReport

__all__ = ["FleetDesired", "FleetMember", "FleetPlacements", "LeasedStreams", "RemoteChanges"]

log = logging.getLogger("streamguard.fleet")

SHED_PER_TURN = 8
"""How many streams over its share an instance hands back in one turn of the lease loop."""


class LeasedStreams(Protocol):
    """What the member starts and stops streams with: ``streams.registry.Streams``."""

    async def run_leased(
        self, stream: StreamConfig, *, from_api: bool, heard_until: datetime | None = None
    ) -> None:
        """Start a stream whose lease was just taken."""

    async def hand_over(self, stream_id: str) -> bool:
        """Stop a stream (its tail recorded); False when it did not run here."""


class ChangeableStreams(Protocol):
    """What remote changes are applied to: ``streams.registry.Streams``."""

    def config_of(self, stream_id: str) -> StreamConfig | None:
        """The config a stream runs with here (None: it does not)."""

    async def change_leased(self, stream: StreamConfig, *, from_api: bool) -> None:
        """Apply a changed config to a stream held here."""


class FleetMember:
    """Runs the streams this instance holds leases on; see the module docstring."""

    def __init__(
        self,
        fleet: Fleet,
        streams: LeasedStreams,
        *,
        shed_per_turn: int = SHED_PER_TURN,
        changes: RemoteChanges | None = None,
        adopt_orphans: Callable[[], Awaitable[int]] | None = None,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.fleet = fleet
        self._settle = settle
        """Writes what waits to be written under the leases (``WriteBatches.drain``):
        awaited before they are given back, else it would be refused as stale."""
        self._changes = changes
        self._adopt_orphans = adopt_orphans
        """Ends the open incidents dead instances left (``Alerting.end_orphans``): at the
        first turn and after every turn that took a stream over."""
        self._orphans_due = adopt_orphans is not None
        self.shed_per_turn = shed_per_turn
        self._streams = streams
        self._stale: set[str] = set()
        self._wake = asyncio.Event()
        self.every = fleet.lease.total_seconds() / 3
        self.takeovers = 0
        """Streams this instance took over from an instance whose lease expired."""
        self.gauges: dict[str, float] = {}
        """The fleet's gauges as of the last turn (``core.metrics.FLEET_GAUGES``)."""

    def stale(self, stream_id: str) -> None:
        """A write of ``stream_id`` was refused: this instance no longer holds it."""
        self.fleet.fences.pop(stream_id, None)
        self._stale.add(stream_id)
        self._wake.set()

    async def run(self) -> None:
        """Take part until cancelled (the loop ``fleet.leases``). The first claim waits one
        turn: instances started together (a deploy) then see each other and claim their
        share, instead of the first taking every stream and the others waiting for it to
        hand them back."""
        await asyncio.sleep(self.every)
        while True:
            try:
                await self.turn()
            except StateError as exc:  # the database is away: leases wait, streams run on
                log.warning("fleet: leases not renewed this turn: %s", exc)
            self._wake.clear()
            try:
                async with asyncio.timeout(self.every):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def turn(self) -> None:
        """One renewal, claim and rebalance: one statement in steady state (``Fleet.turn``:
        heartbeat, renewals and the figures the rest needs), plus the claim when there is
        room, the shedding when there is excess, and the remote config changes."""
        while self._stale:
            await self._hand_over(self._stale.pop(), "a write was refused as stale")
        turn = await self.fleet.turn()
        for stream_id in turn.lost:
            await self._hand_over(stream_id, "its lease was lost")
            self.fleet.forget(stream_id)  # a detached one's tail is recorded now
        claimed = await self.fleet.claim() if turn.room > 0 else []
        for lease in claimed:
            self._orphans_due |= lease.previous_owner is not None
            await self._run(lease)
        if self._orphans_due and self._adopt_orphans is not None:
            await self._adopt_orphans()
            self._orphans_due = False
        if self._changes is not None:
            await self._changes.apply()
        if turn.excess > 0 and not claimed:
            shed = sorted(self.fleet.fences)[: min(turn.excess, self.shed_per_turn)]
            for stream_id in shed:
                await self._hand_over(stream_id, "the fleet grew: handed to another instance")
            await self.fleet.release(shed)
        status = turn.status
        self.gauges = {
            "instances_alive": status.instances_alive,
            "streams": status.streams,
            "streams_unowned": status.streams_unowned,
            "takeovers": status.takeovers,
            "streams_held": len(self.fleet.fences),
        }

    async def _run(self, lease: Lease) -> None:
        if lease.previous_owner is not None:
            self.takeovers += 1
            log.warning(
                "fleet: took stream %s over from %s (its lease expired)",
                lease.stream_id,
                lease.previous_owner,
                extra={"stream_id": lease.stream_id},
            )
        try:
            stream = StreamConfig.model_validate(lease.config)
            await self._streams.run_leased(
                stream, from_api=lease.origin == Origin.API, heard_until=lease.heard_until
            )
        except (ValidationError, StreamGuardError) as exc:
            # Held, not released: another instance would fail the same way.
            log.error(
                "fleet: stream %s cannot run here: %s",
                lease.stream_id,
                exc,
                extra={"stream_id": lease.stream_id},
            )

    async def retry_held(self, held: list[StreamConfig]) -> None:
        """Run again each stream of ``held`` (held here because it could not run: its lease
        kept, another instance would fail the same way) whose lease is still ours, now that
        a reload may have fixed why (a profile defined again). ``from_api=True`` keeps what
        the registry knows of a file stream."""
        for stream in held:
            if stream.id not in self.fleet.fences:
                continue
            try:
                await self._streams.run_leased(stream, from_api=True)
            except StreamGuardError as exc:
                log.error(
                    "fleet: stream %s still cannot run here: %s",
                    stream.id,
                    exc,
                    extra={"stream_id": stream.id},
                )
            else:
                log.info("fleet: held stream %s runs after the reload", stream.id)

    async def _hand_over(self, stream_id: str, why: str) -> None:
        if await self._streams.hand_over(stream_id):
            log.warning("fleet: stopped stream %s: %s", stream_id, why)

    async def leave(self) -> None:
        """Stop claiming; tell the fleet (the daemon then stops the streams)."""
        try:
            await self.fleet.drain()
        except StateError as exc:
            log.warning("fleet: could not mark this instance draining: %s", exc)

    async def release_all(self) -> None:
        """Give every lease back once the streams stopped, so others claim them at once:
        once what waits to be written under them is written (``settle``)."""
        if self._settle is not None:
            await self._settle()
        try:
            await self.fleet.release(list(self.fleet.fences))
        except StateError as exc:
            log.warning("fleet: leases not released (they expire instead): %s", exc)


class RemoteChanges:
    """Applies, once a lease turn, the config changes another instance's API kept in the
    shared desired set for the streams held here (``state.postgres.changes``)."""

    def __init__(self, changes: ConfigChanges, streams: ChangeableStreams) -> None:
        self._changes = changes
        self._streams = streams
        self._versions: dict[str, datetime] = {}
        """The ``updated_at`` of each held stream's config as last applied or seen."""

    async def apply(self) -> None:
        """Apply what another instance's API changed in the configs of the streams held
        here (a stream seen for the first time is compared with what it runs with). A
        row's ``updated_at`` is recorded only once its change is applied or refused for
        good: one the state disk refused (``StateError``) or that raised unexpectedly is
        read and tried again at the next turn."""
        owned = await self._changes.owned(self._versions)
        old = self._versions
        self._versions = {
            row.stream_id: old[row.stream_id] for row in owned if row.stream_id in old
        }
        for row in owned:
            if await self._applied(row):
                self._versions[row.stream_id] = row.updated_at

    async def _applied(self, row: OwnedStream) -> bool:
        """Whether ``row`` is settled: unchanged, applied, or refused for good."""
        running = self._streams.config_of(row.stream_id)
        if row.config is None:
            return True
        if running is None:  # not started yet: compared once it runs
            return False
        try:
            stream = StreamConfig.model_validate(row.config)
            if stream == running:
                return True
            await self._streams.change_leased(stream, from_api=row.origin is Origin.API)
        except StateError as exc:
            log.warning(
                "fleet: the change of stream %s is retried at the next turn: %s",
                row.stream_id,
                exc,
                extra={"stream_id": row.stream_id},
            )
            return False
        except (ValidationError, StreamGuardError) as exc:
            log.error(
                "fleet: the change of stream %s cannot apply here: %s",
                row.stream_id,
                exc,
                extra={"stream_id": row.stream_id},
            )
            return True
        log.info(
            "fleet: stream %s changed through another instance's API: applied",
            row.stream_id,
            extra={"stream_id": row.stream_id},
        )
        return True


class FleetDesired:
    """The registry's ``DesiredStreams`` in fleet mode (see the module docstring)."""

    def __init__(self, fleet: Fleet, desired: PgDesiredStreams) -> None:
        self._fleet = fleet
        self._desired = desired

    async def put(self, stream: StreamConfig, origin: Origin = Origin.API) -> None:
        """Keep ``stream`` and hold it here. Refused, nothing written, as one machine
        refuses it: ``ConfiguredInFile`` for a stream of the config file,
        ``StreamConflict`` when another live instance holds it. (Should another take it
        between that read and the write, the write keeps the config and the refusal names
        that holder: its owner applies the config at its next turn.)"""
        kept = await self._desired.leases(stream.id)
        if kept and kept[0].origin is Origin.CONFIG:
            raise ConfiguredInFile(
                f"stream {stream.id!r} is defined in the config file: change it there and reload"
            )
        if kept and kept[0].live and kept[0].owner not in (None, self._fleet.instance_id):
            raise StreamConflict(f"stream {stream.id!r} runs on instance {kept[0].owner!r}")
        holder = await self._fleet.keep_and_take(
            stream.id, origin.value, stream.model_dump(mode="json")
        )
        if holder is not None:
            raise StreamConflict(f"stream {stream.id!r} runs on instance {holder!r}")

    async def remove(self, stream_id: str) -> bool:
        """Forget ``stream_id`` fleet-wide (its holder stops it at its next renewal);
        ``ConfiguredInFile`` for a stream of the config file, wherever it runs. Its fence
        stays till then: the registry stops it after this, and its tail records under it (no
        other instance can hold a stream without a row)."""
        kept = await self._desired.leases(stream_id)
        if kept and kept[0].origin is Origin.CONFIG:
            raise ConfiguredInFile(
                f"stream {stream_id!r} is defined in the config file: change it there and reload"
            )
        return await self._desired.remove(stream_id)

    async def all(self, origin: Origin = Origin.API) -> list[DesiredStream]:
        """Nothing to restore here: leases bring the desired set back."""
        del origin
        return []


class FleetPlacements:
    """``streams.placement.Placements`` in fleet mode: the shared desired set and its leases
    say who owns each stream; the streams running here bring their live reports."""

    def __init__(self, fleet: Fleet, desired: PgDesiredStreams, changes: ConfigChanges) -> None:
        self._fleet = fleet
        self._desired = desired
        self._changes = changes
        self.instance_id: str | None = fleet.instance_id

    async def all(self, reports: list[StreamReport]) -> tuple[list[PlacedStream], bool]:
        """The fleet's streams by id, then any running here the desired set no longer has
        (detached, stopping). While the database is away: only the streams running here."""
        local = {report.stream_id: report for report in reports}
        try:
            leases = await self._desired.leases()
        except StateError as exc:
            log.warning("fleet: streams listed from this instance only: %s", exc)
            return [self._running_here(report) for report in reports], False
        placed = [self._placed(lease, local.pop(lease.stream_id, None)) for lease in leases]
        return placed + [self._running_here(report) for report in local.values()], True

    async def one(self, stream_id: str, report: StreamReport | None) -> PlacedStream | None:
        """One stream: from the desired set, or running here (the database away, or it was
        just detached)."""
        try:
            leases = await self._desired.leases(stream_id)
        except StateError:
            leases = []
        if leases:
            return self._placed(leases[0], report)
        return None if report is None else self._running_here(report)

    async def change(
        self, stream: StreamConfig, seen: datetime | None = None
    ) -> PendingChange | None:
        """Keep ``stream``'s new config in the desired set for its owner to apply at its
        next turn (or whoever claims it next), while the kept one is still of version
        ``seen``; ``ConfiguredInFile`` for a stream of the config file, ``ChangedMeanwhile``
        when another change was kept since; None when the stream is gone."""
        leases = await self._desired.leases(stream.id)
        if not leases:
            return None
        if leases[0].origin is Origin.CONFIG:
            raise ConfiguredInFile(
                f"stream {stream.id!r} is defined in the config file: change it there and reload"
            )
        kept = await self._changes.change(stream.id, stream.model_dump(mode="json"), seen)
        if kept is Kept.STALE:
            raise ChangedMeanwhile(
                f"stream {stream.id!r} was changed since it was read: read it again and retry"
            )
        if kept is Kept.GONE:
            return None
        leases = await self._desired.leases(stream.id)
        if not leases:
            return None
        placed = self._placed(leases[0], None)
        live = placed.placement.where is not Where.UNOWNED
        return PendingChange(placed, self._fleet.lease.total_seconds() / 3 if live else None)

    def _placed(self, lease: StreamLease, report: StreamReport | None) -> PlacedStream:
        if lease.owner is None or not lease.live:
            where = Where.UNOWNED
        else:
            where = Where.HERE if lease.owner == self.instance_id else Where.ELSEWHERE
        generation = lease.generation if lease.owner is not None else None
        placement = Placement(where, lease.owner, generation, lease.lease_until)
        config = _kept(lease.config)
        return PlacedStream(lease.stream_id, placement, report, config, lease.updated_at)

    def _running_here(self, report: StreamReport) -> PlacedStream:
        generation = self._fleet.fences.get(report.stream_id)
        placement = Placement(Where.HERE, self.instance_id, generation)
        return PlacedStream(report.stream_id, placement, report)


def _kept(config: dict[str, Any]) -> dict[str, Any]:
    """A kept config as the API shows a stream's (defaults filled in), or as it was stored
    when it is no longer valid."""
    try:
        return StreamConfig.model_validate(config).model_dump()
    except ValidationError:
        return config
