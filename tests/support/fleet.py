"""Daemons of one fleet as processes in tests: started one by one on one config, and the
shared database read directly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from streamguard.state.desired import Origin
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet
from streamguard.testing.alerts import stream
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

__all__ = ["hold", "holder", "query", "start", "take"]


def query(pg_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows ``sql`` reads from the fleet's database."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql, params).fetchall()


async def start(
    daemons: list[DaemonProcess],
    tmp_path: Path,
    config: str | Callable[[int], str],
    count: int,
    env: dict[str, str] | None = None,
) -> list[DaemonProcess]:
    """Start ``count`` instances ``i0``, ``i1``, … on ``config`` (or instance n on
    ``config(n)``), added to ``daemons``."""
    for n in range(count):
        body = config if isinstance(config, str) else config(n)
        daemon = DaemonProcess(tmp_path / f"i{n}", body, instance=f"i{n}", env=env)
        daemons.append(daemon)
        await asyncio.to_thread(daemon.start)
    return daemons


async def holder(db: PgDatabase, instance: str, lease: float = 0.3) -> Fleet:
    """A member of the fleet, joined, holding nothing yet."""
    fleet = Fleet(db, instance, lease_seconds=lease)
    await fleet.join()
    return fleet


async def take(fleet: Fleet, stream_id: str) -> None:
    """Renew and claim until ``fleet`` holds ``stream_id``."""

    async def held() -> bool:
        await fleet.renew()
        await fleet.claim()
        return stream_id in fleet.fences

    await eventually(held, 60, 0.05)


async def hold(db: PgDatabase, stream_ids: list[str], fleet: Fleet | None = None) -> Fleet:
    """An instance (``fleet``, else a new one, ``test``) holding the leases of ``stream_ids``
    (attached if they are not) for the length of a test: its ``fence`` lets the shared
    stores accept their writes."""
    desired = PgDesiredStreams(db)
    attached = {kept.stream_id for kept in await desired.all(None)}
    for stream_id in stream_ids:
        if stream_id not in attached:
            await desired.put(stream(stream_id), Origin.API)
    if fleet is None:
        fleet = await holder(db, "test", lease=3600)
    for stream_id in stream_ids:
        await take(fleet, stream_id)
    return fleet
