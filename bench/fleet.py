"""Fleet leases against a real PostgreSQL started here: the coordination cost and the
takeover time, without media (the streams are started and stopped by a counting stand-in).

    .venv/bin/python -m bench.fleet [--streams 300] [--instances 3] [--lease 15]
                                    [--minutes 1] [--kills 3]

1. steady state: ``--instances`` members share ``--streams`` streams for ``--minutes``;
   reported: the lease loop's database transactions per stream per minute (renewal,
   claim, rebalance check, gauges), and the spread;
2. takeover: ``--kills`` times, one member stops dead (no release, no renewal); reported:
   the time from the kill to each of its streams being claimed by another (p50, max), the
   bound being one lease plus one claim turn (a third of a lease). The killed
   member rejoins and the fleet rebalances before the next round.

Result writes are not in these figures: each stream writes one result per segment (4 a
minute at 15 s segments), whatever the number of instances.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from streamguard.config.streams import StreamConfig
from streamguard.state.desired import Origin
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.streams.fleet import FleetMember
from streamguard.testing.postgres import PostgresServer


class Running:
    """Stands in for the registry: remembers which streams run here."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def run_leased(
        self, stream: StreamConfig, *, from_api: bool, heard_until: datetime | None = None
    ) -> None:
        self.ids.add(stream.id)

    async def hand_over(self, stream_id: str) -> bool:
        present = stream_id in self.ids
        self.ids.discard(stream_id)
        return present


class Instance:
    """One member with its own pool, as a process would have."""

    def __init__(self, url: str, name: str, lease: float) -> None:
        self.url = url
        self.db = PgDatabase(url)
        self.name = name
        self.lease = lease
        self.running = Running()
        self.member: FleetMember | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.db = PgDatabase(self.url)  # a new process: a new pool
        await self.db.open()
        fleet = Fleet(self.db, self.name, lease_seconds=self.lease)
        await fleet.join()
        self.running = Running()
        self.member = FleetMember(fleet, self.running)
        self.task = asyncio.create_task(self.member.run(), name=f"bench.{self.name}")

    async def kill(self) -> float:
        """Stop dead; return the monotonic time of its last renewal's end (about)."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.db.close()
        return time.monotonic()


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the database changes, no event says so
            await asyncio.sleep(0.05)


async def bench(streams: int, instances: int, lease: float, minutes: float, kills: int) -> None:
    with PostgresServer() as server:
        url = server.create_database()
        setup = PgDatabase(url)
        await setup.open()
        desired = PgDesiredStreams(setup)
        for n in range(streams):
            config = StreamConfig(id=f"room-{n}", url=f"http://127.0.0.1/{n}", room=f"r{n}")
            await desired.put(config, Origin.CONFIG)
        fleet = [Instance(url, f"i{n}", lease) for n in range(instances)]
        for instance in fleet:
            await instance.start()
        share = -(-streams // instances)

        async def spread() -> bool:
            held = [len(i.running.ids) for i in fleet]
            return sum(held) == streams and max(held) <= share + 1

        await wait_for(spread, 120)
        before = sum(i.db.queries for i in fleet)
        await asyncio.sleep(minutes * 60)
        queries = sum(i.db.queries for i in fleet) - before  # no pool was replaced meanwhile
        print(f"steady state: {streams} streams on {instances} instances, lease {lease:g} s")
        print(f"  held: {sorted(len(i.running.ids) for i in fleet)} (share {share})")
        print(
            f"  lease-loop transactions: {queries / minutes:.0f}/min fleet-wide, "
            f"{queries / streams / minutes:.3f} per stream per minute"
        )
        await takeovers(fleet, kills, streams, share)
        for instance in fleet:
            await instance.kill()
        await setup.close()


async def takeovers(fleet: list[Instance], kills: int, streams: int, share: int) -> None:
    delays: list[float] = []
    for round_ in range(kills):
        victim = fleet[round_ % len(fleet)]
        delays += await kill_one(victim, [i for i in fleet if i is not victim])
        await victim.start()

        async def rebalanced() -> bool:
            held = [len(i.running.ids) for i in fleet]
            return sum(held) == streams and max(held) <= share + 1

        await wait_for(rebalanced, 10 * victim.lease)
    delays.sort()
    print(f"takeover after a kill ({kills} kills, {len(delays)} streams moved):")
    print(
        f"  from the kill to the claim: p50 {statistics.median(delays):.1f} s, max "
        f"{delays[-1]:.1f} s (bound: lease + a third of it = {fleet[0].lease * 4 / 3:.1f} s)"
    )
    print("  (machine shared with other work: figures are indicative)")


async def kill_one(victim: Instance, others: list[Instance]) -> list[float]:
    """Kill ``victim``; the seconds from the kill until each of its streams was claimed."""
    orphans = set(victim.running.ids)
    killed_at = await victim.kill()
    claimed_at: dict[str, float] = {}

    async def all_claimed() -> bool:
        now = time.monotonic()
        for instance in others:
            for stream_id in instance.running.ids & orphans:
                claimed_at.setdefault(stream_id, now)
        return len(claimed_at) == len(orphans)

    await wait_for(all_claimed, 10 * victim.lease)
    return [at - killed_at for at in claimed_at.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    for name in ("streamguard", "psycopg"):  # streams moving are the point here, not news
        logging.getLogger(name).setLevel(logging.ERROR)
    asyncio.run(bench(args.streams, args.instances, args.lease, args.minutes, args.kills))


if __name__ == "__main__":
    main()
