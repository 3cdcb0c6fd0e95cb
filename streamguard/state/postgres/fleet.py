"""Instances and leases: who is alive in the fleet, and which instance runs which stream.

An instance ``join``s (its row in ``fleet_instances``) and ``renew``s now and then: one
transaction that proves it alive (heartbeat) and extends the lease of every stream it holds,
and tells it which of them it lost (taken over while it was away, or detached). ``claim``
takes streams nobody holds or whose lease expired, with ``FOR UPDATE SKIP LOCKED`` so
instances claiming at once never wait for nor take the same row, up to this instance's
share: the fleet's streams spread over the live instances, each taking at most its
capacity (water-filling: the share is the smallest level at which the instances, each
capped by its capacity, hold every stream). ``excess`` says how many to give back when
the fleet grew; ``release`` gives streams back at once (drain, shed).

Each change of holder gives the stream a new ``generation`` (from one sequence): the fence.
``fences`` holds the generation of every stream this instance holds, and the shared stores
check it in the transaction of each write (``check_fence``): a stale owner's writes are
refused.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from streamguard.state.postgres.database import Connection, PgDatabase, StaleWrite

__all__ = [
    "Fence",
    "Fleet",
    "FleetStatus",
    "Lease",
    "Turn",
    "check_fence",
    "fair_share",
    "fences_now",
    "moved",
]


@dataclass(frozen=True, slots=True)
class Lease:
    """A stream this instance just claimed."""

    stream_id: str
    generation: int
    config: dict[str, Any]
    previous_owner: str | None
    """Who held it before (None: nobody, or it was released): a takeover when set."""
    origin: str
    """Who asked for the stream (``state.desired.Origin``'s values)."""
    heard_until: datetime | None = None
    """The end of the stream's last recorded segment, by whoever held it (None: none)."""


@dataclass(frozen=True, slots=True)
class Fence:
    """What a fenced write carries: the writer and the lease generation it holds. An
    orphan's fence (``PgTaskStore.orphan_fence``) carries its last holder, None when the
    stream was released, so that it matches the row as it stands."""

    stream_id: str
    owner: str | None
    generation: int


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """The fleet gauges."""

    instances_alive: int
    streams: int
    streams_unowned: int
    takeovers: int


@dataclass(frozen=True, slots=True)
class Turn:
    """What one lease turn (``Fleet.turn``) learnt."""

    lost: list[str]
    """Held streams that were lost (taken over, or detached)."""
    room: int
    """How many more streams this instance may claim (its share less what it holds)."""
    excess: int
    """How many held streams are over its share (to give back)."""
    status: FleetStatus


class Fleet:
    """This instance's membership and its leases, in the shared database."""

    def __init__(
        self,
        db: PgDatabase,
        instance_id: str,
        *,
        lease_seconds: float,
        capacity: int | None = None,
    ) -> None:
        self._db = db
        self.instance_id = instance_id
        self.lease = timedelta(seconds=lease_seconds)
        self.capacity = capacity
        self.fences: dict[str, int] = {}
        """Streams held now, with their generation."""
        self._taking: set[str] = set()
        """Streams ``keep_and_take`` is taking right now (not yet in ``fences``)."""
        self._exclusive = asyncio.Lock()
        """Held by a renewal and by an API attach's transaction (see ``turn``)."""
        self.draining = False

    def fence(self, stream_id: str) -> Fence | None:
        """The fence a write for ``stream_id`` carries, None when this instance holds none."""
        generation = self.fences.get(stream_id)
        return None if generation is None else Fence(stream_id, self.instance_id, generation)

    async def join(self) -> None:
        """Register (again) as alive; a restarted instance gets none of its old leases back
        by joining: it releases them (it runs none of them), and they are claimed like
        anyone's."""

        async def upsert(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO fleet_instances (instance_id, started_at, heartbeat_at, capacity)"
                " VALUES (%s, now(), now(), %s) ON CONFLICT (instance_id) DO UPDATE SET"
                " started_at = now(), heartbeat_at = now(), draining = false,"
                " capacity = excluded.capacity",
                (self.instance_id, self.capacity),
            )
            await _release_unheld(conn, self.instance_id, [])

        await self._db.run(upsert)
        self.draining = False

    async def renew(self) -> list[str]:
        """Heartbeat and extend every held lease (``turn``); return the held streams that
        were lost."""
        return (await self.turn()).lost

    async def turn(self) -> Turn:
        """One statement (its own transaction): heartbeat, extend every held lease (those
        in ``fences``, by generation, locked in ``stream_id`` order like a unit of work's
        fences), give back any other row owned under this id (a previous run's, a claim
        whose answer was lost), and read what the lease loop needs: the fleet's gauges and
        this instance's share. ``lost`` are the held streams that were lost: one taken over
        is forgotten from ``fences``; one detached fleet-wide (its row gone) keeps its
        fence, so its tail still records, till the caller stopped it and ``forget``s it."""
        held = dict(self.fences)

        async def renew(conn: Connection) -> tuple[Any, ...]:
            params = {
                "me": self.instance_id,
                "draining": self.draining,
                "lease": self.lease,
                "ids": list(held),
                "generations": list(held.values()),
                # Held as of now: an API attach may have taken a stream since ``held``.
                "keep": [*self.fences, *self._taking],
            }
            cursor = await conn.execute(_TURN, params)
            row = await cursor.fetchone()
            assert row is not None  # aggregates always give a row
            return row

        # An API attach committing between reading ``keep`` and the statement would be
        # given back: the two take turns.
        async with self._exclusive:
            row = await self._db.once(renew)
        kept, existing, mine, streams, unowned, takeovers, alive, others = row
        lost = [s for s in held if s not in set(kept)]
        for stream_id in lost:
            if stream_id in existing:
                self.fences.pop(stream_id, None)
        share = fair_share(streams, [*others, self.capacity])
        if self.capacity is not None:
            share = min(self.capacity, share)
        status = FleetStatus(alive, streams, unowned, takeovers)
        if self.draining:
            return Turn(lost, 0, 0, status)
        return Turn(lost, max(0, share - mine), max(0, mine - share), status)

    def forget(self, stream_id: str) -> None:
        """Drop the fence of a stream that stopped here (its tail recorded)."""
        self.fences.pop(stream_id, None)

    async def claim(self) -> list[Lease]:
        """Claim free and expired streams up to this instance's share (none while draining)."""
        if self.draining:
            return []

        async def claim(conn: Connection) -> list[Lease]:
            share = await self._share(conn)
            room = share - await _held(conn, self.instance_id)
            if room <= 0:
                return []
            cursor = await conn.execute(_CLAIM, (room, self.instance_id, self.lease))
            leases = [Lease(*row) for row in await cursor.fetchall()]
            await _history(conn, self.instance_id, leases)
            return leases

        leases = await self._db.run(claim)
        for lease in leases:
            self.fences[lease.stream_id] = lease.generation
        return leases

    async def keep_and_take(
        self, stream_id: str, origin: str, config: dict[str, Any]
    ) -> str | None:
        """Keep a stream in the desired set and hold it here at once, in one transaction,
        unless another live instance holds it (an API attach runs where it was asked).
        Returns that other holder, or None when this instance now holds the stream."""

        async def take(conn: Connection) -> tuple[str | None, int | None]:
            await conn.execute(_KEEP, (stream_id, origin, Jsonb(config)))
            cursor = await conn.execute(
                _TAKE, {"me": self.instance_id, "lease": self.lease, "id": stream_id}
            )
            taken = await cursor.fetchone()
            if taken is None:
                cursor = await conn.execute(
                    "SELECT owner FROM desired_streams WHERE stream_id = %s", (stream_id,)
                )
                row = await cursor.fetchone()
                return (None if row is None else row[0]), None
            generation, previous = taken
            if previous != self.instance_id:
                lease = Lease(stream_id, generation, config, previous, origin)
                await _history(conn, self.instance_id, [lease])
            return None, generation

        self._taking.add(stream_id)  # a renewal meanwhile leaves its row alone
        try:
            async with self._exclusive:
                holder, generation = await self._db.run(take)
        finally:
            self._taking.discard(stream_id)
        if generation is not None:
            self.fences[stream_id] = generation
        return holder

    async def excess(self) -> int:
        """How many held streams are over this instance's share (to give back: the fleet
        grew, or the share of the desired set shrank)."""

        async def count(conn: Connection) -> int:
            return await _held(conn, self.instance_id) - await self._share(conn)

        return max(0, await self._db.run(count)) if not self.draining else 0

    async def _share(self, conn: Connection) -> int:
        cursor = await conn.execute(_SHARE_INPUTS, {"ttl": self.lease, "me": self.instance_id})
        rows = await cursor.fetchall()
        streams = rows[0][0] if rows else 0
        capacities = [row[1] for row in rows if row[2]]
        mine = self.capacity
        level = fair_share(streams, [*capacities, mine])
        return level if mine is None else min(mine, level)

    async def release(self, stream_ids: Iterable[str]) -> None:
        """Give streams back at once (their tails judged): another instance may claim them
        at its next claim. Only leases still held under the fenced generation are released."""
        fences = sorted((s, self.fences[s]) for s in stream_ids if s in self.fences)
        if not fences:
            return

        async def release(conn: Connection) -> None:
            for stream_id, generation in fences:
                cursor = await conn.execute(
                    "UPDATE desired_streams SET owner = NULL, lease_until = NULL"
                    " WHERE stream_id = %s AND owner = %s AND generation = %s",
                    (stream_id, self.instance_id, generation),
                )
                if cursor.rowcount:
                    await conn.execute(
                        "INSERT INTO lease_history (stream_id, generation, kind, from_owner)"
                        " VALUES (%s, %s, 'release', %s)",
                        (stream_id, generation, self.instance_id),
                    )

        await self._db.run(release)
        for stream_id, _ in fences:
            self.fences.pop(stream_id, None)

    async def drain(self) -> None:
        """Stop claiming, and tell the fleet (a draining instance has no share)."""
        self.draining = True

        async def mark(conn: Connection) -> None:
            await conn.execute(
                "UPDATE fleet_instances SET draining = true WHERE instance_id = %s",
                (self.instance_id,),
            )

        await self._db.run(mark)

    async def status(self) -> FleetStatus:
        """The fleet's gauges, as the database sees them now."""

        async def read(conn: Connection) -> FleetStatus:
            cursor = await conn.execute(_STATUS, (self.lease,))
            row = await cursor.fetchone()
            assert row is not None  # aggregates always give a row
            return FleetStatus(*row)

        return await self._db.run(read)


def fair_share(streams: int, capacities: list[int | None]) -> int:
    """The smallest level L at which instances each holding min(capacity, L) hold
    ``streams`` (every instance's capacity when they cannot: the rest stays unowned)."""
    if not capacities or streams <= 0:
        return 0
    level = math.ceil(streams / len(capacities))
    while sum(level if c is None else min(c, level) for c in capacities) < streams:
        if all(c is not None and c <= level for c in capacities):
            break
        level += 1
    return level


async def check_fence(conn: Connection, fence: Fence) -> None:
    """Raise ``StaleWrite`` when another generation holds the stream now. The row stays
    share-locked till the write's transaction ends, so no claim slips in between. A stream
    detached meanwhile (no row) takes its last writes: nobody else can hold it, and a new
    attach starts from a generation never used before."""
    cursor = await conn.execute(
        "SELECT owner, generation FROM desired_streams WHERE stream_id = %s FOR SHARE",
        (fence.stream_id,),
    )
    row = await cursor.fetchone()
    if row is not None and (row[0], row[1]) != (fence.owner, fence.generation):
        raise StaleWrite(fence.stream_id, fence.generation)


_FENCES = (
    "SELECT stream_id, owner, generation FROM desired_streams WHERE stream_id = ANY(%s)"
    " ORDER BY stream_id FOR SHARE"
)

Holders = dict[str, tuple[str | None, int]]
"""Each fenced stream's (owner, generation) as the database has it now."""


async def fences_now(conn: Connection, fences: Iterable[Fence]) -> Holders:
    """The holders of the fenced streams, share-locked till the transaction ends (as
    ``check_fence`` does one), in ``stream_id`` order: the order a renewal locks them in,
    so the two never deadlock. One statement, none when there is no fence."""
    ids = sorted({fence.stream_id for fence in fences})
    if not ids:
        return {}
    cursor = await conn.execute(_FENCES, (ids,))
    return {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}


def moved(fence: Fence, holders: Holders) -> bool:
    """Whether another generation holds the fenced stream now (a detached stream, no row,
    takes its last writes: see ``check_fence``)."""
    row = holders.get(fence.stream_id)
    return row is not None and row != (fence.owner, fence.generation)


async def _release_unheld(conn: Connection, instance_id: str, held: list[str]) -> None:
    """Give back every row owned under ``instance_id`` whose stream is not ``held`` here."""
    cursor = await conn.execute(
        "UPDATE desired_streams SET owner = NULL, lease_until = NULL"
        " WHERE owner = %s AND NOT (stream_id = ANY(%s::text[]))"
        " RETURNING stream_id, generation",
        (instance_id, held),
    )
    released = await cursor.fetchall()
    if released:
        async with conn.cursor() as insert:
            await insert.executemany(
                "INSERT INTO lease_history (stream_id, generation, kind, from_owner)"
                " VALUES (%s, %s, 'release', %s)",
                [(row[0], row[1], instance_id) for row in released],
            )


async def _held(conn: Connection, instance_id: str) -> int:
    cursor = await conn.execute(
        "SELECT count(*) FROM desired_streams WHERE owner = %s", (instance_id,)
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _history(conn: Connection, instance_id: str, leases: list[Lease]) -> None:
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO lease_history (stream_id, generation, kind, from_owner, to_owner)"
            " VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    lease.stream_id,
                    lease.generation,
                    "claim" if lease.previous_owner is None else "takeover",
                    lease.previous_owner,
                    instance_id,
                )
                for lease in leases
            ],
        )


_TURN = """
WITH beat AS (
    UPDATE fleet_instances SET heartbeat_at = now(), draining = %(draining)s
    WHERE instance_id = %(me)s
    RETURNING instance_id
), held AS (
    SELECT d.stream_id FROM desired_streams AS d
    JOIN unnest(%(ids)s::text[], %(generations)s::bigint[]) AS h(stream_id, generation)
        ON d.stream_id = h.stream_id AND d.generation = h.generation
    WHERE d.owner = %(me)s
    ORDER BY d.stream_id
    FOR UPDATE OF d
), kept AS (
    UPDATE desired_streams AS d SET lease_until = now() + %(lease)s
    FROM held WHERE d.stream_id = held.stream_id
    RETURNING d.stream_id
), released AS (
    UPDATE desired_streams SET owner = NULL, lease_until = NULL
    WHERE owner = %(me)s AND NOT (stream_id = ANY(%(keep)s::text[]))
    RETURNING stream_id, generation
), history AS (
    INSERT INTO lease_history (stream_id, generation, kind, from_owner)
    SELECT stream_id, generation, 'release', %(me)s FROM released
)
SELECT
    ARRAY(SELECT stream_id FROM kept),
    ARRAY(SELECT stream_id FROM desired_streams WHERE stream_id = ANY(%(ids)s::text[])),
    (SELECT count(*) FROM desired_streams WHERE owner = %(me)s)
        - (SELECT count(*) FROM released),
    (SELECT count(*) FROM desired_streams),
    (SELECT count(*) FROM desired_streams WHERE owner IS NULL OR lease_until < now()),
    (SELECT count(*) FROM lease_history WHERE kind = 'takeover'),
    (SELECT count(*) FROM fleet_instances WHERE heartbeat_at > now() - %(lease)s)
        + (SELECT count(*) FROM beat WHERE NOT EXISTS (
            SELECT 1 FROM fleet_instances
            WHERE instance_id = %(me)s AND heartbeat_at > now() - %(lease)s)),
    ARRAY(SELECT capacity FROM fleet_instances
        WHERE heartbeat_at > now() - %(lease)s AND NOT draining AND instance_id <> %(me)s)
"""
"""One lease turn (``Fleet.turn``): the heartbeat, the held leases extended (locked in
``stream_id`` order), the rows owned here but not held given back, and what the loop reads:
held-stream ids kept and still desired, how many this instance owns, the gauges, and the
capacities of the other live instances. The reads see the rows as they were before the
statement (one snapshot), hence the corrections for what it released and its own
heartbeat."""

_CLAIM = """
WITH free AS (
    SELECT stream_id, owner FROM desired_streams
    WHERE owner IS NULL OR lease_until < now()
    ORDER BY lease_until NULLS FIRST, created_at, stream_id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
UPDATE desired_streams AS d
SET owner = %s, lease_until = now() + %s, generation = nextval('lease_generations')
FROM free WHERE d.stream_id = free.stream_id
RETURNING d.stream_id, d.generation, d.config, free.owner, d.origin,
    (SELECT max(r.ended_at) FROM results AS r WHERE r.stream_id = d.stream_id)
"""
"""Take up to N streams nobody holds or whose lease expired; rows another instance is
claiming right now are skipped, not waited for."""

_KEEP = """
INSERT INTO desired_streams (stream_id, origin, config, created_at, updated_at)
VALUES (%s, %s, %s, now(), now())
ON CONFLICT (stream_id) DO UPDATE SET origin = excluded.origin, config = excluded.config,
    updated_at = excluded.updated_at
"""

_TAKE = """
WITH old AS (SELECT stream_id, owner FROM desired_streams WHERE stream_id = %(id)s FOR UPDATE)
UPDATE desired_streams AS d
SET owner = %(me)s, lease_until = now() + %(lease)s,
    generation = CASE WHEN old.owner IS DISTINCT FROM %(me)s
        THEN nextval('lease_generations') ELSE d.generation END
FROM old
WHERE d.stream_id = old.stream_id
  AND (old.owner IS NULL OR old.owner = %(me)s OR d.lease_until < now())
RETURNING d.generation, old.owner
"""
"""Hold one stream here unless another instance holds a live lease on it; the generation
grows only when the holder changes."""

_SHARE_INPUTS = """
SELECT (SELECT count(*) FROM desired_streams), capacity, instance_id <> %(me)s
FROM fleet_instances
WHERE (heartbeat_at > now() - %(ttl)s AND NOT draining) OR instance_id = %(me)s
"""
"""The desired streams' count, and the capacity of each other live instance (flagged)."""

_STATUS = """
SELECT
    (SELECT count(*) FROM fleet_instances WHERE heartbeat_at > now() - %s),
    (SELECT count(*) FROM desired_streams),
    (SELECT count(*) FROM desired_streams WHERE owner IS NULL OR lease_until < now()),
    (SELECT count(*) FROM lease_history WHERE kind = 'takeover')
"""
