"""Daemons of one fleet as processes in tests: started one by one on one config, and the
shared database read directly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.support.daemon import DaemonProcess

__all__ = ["query", "start"]


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
