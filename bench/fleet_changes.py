"""Changes through another instance's API, against a real PostgreSQL started here: what the
owner's pickup costs the database and how long a change waits for its owner.

    .venv/bin/python -m bench.fleet_changes [--streams 300] [--instances 3] [--lease 15]
                                            [--minutes 1] [--changes 30]

1. steady state, twice in the same run: ``--instances`` members share ``--streams`` streams
   for ``--minutes`` with the lease loop alone, then with the pickup of remote changes and
   the adoption of orphaned incidents as the daemon runs them; reported: the database
   transactions per stream per minute of each, and the difference;
2. pickup: ``--changes`` config changes written as ``PATCH`` on a non-owner writes them
   (``ConfigChanges.change``), one at a time, each just after the owner applied the last
   (so it waits about a whole turn: the worst case); reported: the time from the write to
   the owner applying it (p50, max; bound: one turn of the owner's loop, a third of a lease,
   plus the turn's own queries).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime

from bench.fleet import Running, wait_for
from streamguard.config.streams import StreamConfig
from streamguard.state.desired import Origin
from streamguard.state.postgres.changes import ConfigChanges
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.journal import PgIncidentJournal
from streamguard.streams.fleet import FleetMember, RemoteChanges
from streamguard.testing.postgres import PostgresServer


class Changing(Running):
    """The stand-in registry, with configs: notes when a changed one arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.configs: dict[str, StreamConfig] = {}
        self.applied: dict[str, float] = {}

    async def run_leased(
        self, stream: StreamConfig, *, from_api: bool, heard_until: datetime | None = None
    ) -> None:
        await super().run_leased(stream, from_api=from_api, heard_until=heard_until)
        self.configs[stream.id] = stream

    def config_of(self, stream_id: str) -> StreamConfig | None:
        return self.configs.get(stream_id)

    async def change_leased(self, stream: StreamConfig, *, from_api: bool) -> None:
        self.configs[stream.id] = stream
        self.applied[stream.id] = time.monotonic()


async def members(
    url: str, instances: int, lease: float, changes: bool
) -> tuple[list[PgDatabase], list[Changing], list[asyncio.Task[None]]]:
    dbs, stand_ins, tasks = [], [], []
    for n in range(instances):
        db = PgDatabase(url)
        await db.open()
        fleet = Fleet(db, f"i{n}", lease_seconds=lease)
        await fleet.join()
        running = Changing()
        journal = PgIncidentJournal(db, f"i{n}", alive_within=lease)

        async def adopt(journal: PgIncidentJournal = journal) -> int:
            return len(await journal.adopt_orphans())

        member = FleetMember(
            fleet,
            running,
            changes=RemoteChanges(ConfigChanges(db, f"i{n}"), running) if changes else None,
            adopt_orphans=adopt if changes else None,
        )
        dbs.append(db)
        stand_ins.append(running)
        tasks.append(asyncio.create_task(member.run(), name=f"bench.i{n}"))
    return dbs, stand_ins, tasks


async def steady(
    url: str, streams: int, instances: int, lease: float, minutes: float, changes: bool
) -> tuple[float, list[Changing], list[PgDatabase], list[asyncio.Task[None]]]:
    dbs, stand_ins, tasks = await members(url, instances, lease, changes)

    async def spread() -> bool:
        return sum(len(s.ids) for s in stand_ins) == streams

    await wait_for(spread, 20 * lease)
    await asyncio.sleep(lease)  # the first adoption and version reads are behind
    before = sum(db.queries for db in dbs)
    await asyncio.sleep(minutes * 60)
    per_stream = (sum(db.queries for db in dbs) - before) / streams / minutes
    return per_stream, stand_ins, dbs, tasks


async def stop(dbs: list[PgDatabase], tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for db in dbs:
        await db.close()


async def bench(streams: int, instances: int, lease: float, minutes: float, count: int) -> None:
    with PostgresServer() as server:
        url = server.create_database()
        api = PgDatabase(url)
        await api.open()
        desired = PgDesiredStreams(api)
        for n in range(streams):
            config = StreamConfig(id=f"room-{n}", url=f"http://127.0.0.1/{n}", room=f"r{n}")
            await desired.put(config, Origin.CONFIG)
        base, _, dbs, tasks = await steady(url, streams, instances, lease, minutes, False)
        await stop(dbs, tasks)
        await api.run(lambda conn: conn.execute("UPDATE desired_streams SET owner = NULL"))
        full, stand_ins, dbs, tasks = await steady(url, streams, instances, lease, minutes, True)
        print(f"steady state: {streams} streams on {instances} instances, lease {lease:g} s")
        print(f"  lease loop alone: {base:.3f} transactions per stream per minute")
        print(
            f"  with change pickup and orphan adoption: {full:.3f} "
            f"(+{full - base:.3f}; one query per instance per turn)"
        )
        delays = await pickups(api, stand_ins, count, streams)
        print(f"pickup of a change made elsewhere ({count} changes):")
        print(
            f"  from the write to the owner applying it: p50 {statistics.median(delays):.2f} s,"
            f" max {max(delays):.2f} s (one turn: a third of a lease = {lease / 3:.1f} s, plus"
            " the turn's own queries)"
        )
        print("  (machine shared with other work: figures are indicative)")
        await stop(dbs, tasks)
        await api.close()


async def pickups(
    api: PgDatabase, stand_ins: list[Changing], count: int, streams: int
) -> list[float]:
    changes = ConfigChanges(api, "api")
    delays = []
    for n in range(count):
        stream_id = f"room-{n * 7 % streams}"
        owner = next(s for s in stand_ins if stream_id in s.ids)
        config = StreamConfig(id=stream_id, url=f"http://127.0.0.1/{n}", room=f"moved-{n}")
        written = time.monotonic()
        await changes.change(stream_id, config.model_dump(mode="json"), None)

        async def applied(
            owner: Changing = owner, stream_id: str = stream_id, written: float = written
        ) -> bool:
            return owner.applied.get(stream_id, 0.0) >= written

        await wait_for(applied, 60)
        delays.append(owner.applied[stream_id] - written)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(bench(args.streams, args.instances, args.lease, args.minutes, args.changes))


if __name__ == "__main__":
    main()
