"""Three daemons as processes on one PostgreSQL and one broker: the streams spread over
them, a killed instance's streams are judged again by the others, a SIGTERM hands streams
over at once (released, not left to expire)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from streamguard.ingest.encoder import encode_pcm
from streamguard.testing.broker import Mosquitto
from streamguard.testing.media_servers import IcecastServer
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # paced real-time media, three daemons

STREAMS = [f"s{n}" for n in range(6)]
LEASE = 3.0
QUIET_SECONDS = 600

CONFIG = """
[ingest]
segment_seconds = 15
open_timeout = 2
read_timeout = 2
stall_timeout = 3
[ingest.backoff]
initial = 0.2
maximum = 1.0
"""


@pytest.fixture(scope="module")
def quiet_media(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, float]:
    """Ten minutes of silence as mp3: every segment is judged by the speech gate alone."""
    path = tmp_path_factory.mktemp("quiet") / "quiet.mp3"
    encode_pcm(np.zeros(QUIET_SECONDS * 16_000, dtype=np.int16), path, "mp3", 32_000)
    return path.read_bytes(), float(QUIET_SECONDS)


def fleet_config(pg_url: str, mosquitto: Mosquitto, url: str) -> str:
    streams = "".join(
        f'[[streams]]\nid = "{s}"\nurl = "{url}"\nroom = "room-{s}"\n' for s in STREAMS
    )
    return (
        CONFIG
        + f'[state]\nurl = "{pg_url}"\nlease_seconds = {LEASE}\n'
        + f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "fleet"\n'
        + streams
    )


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    made: list[DaemonProcess] = []
    yield made
    for daemon in made:
        daemon.close()


def query(pg_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql).fetchall()


def owners(pg_url: str) -> dict[str, str | None]:
    return dict(query(pg_url, "SELECT stream_id, owner FROM desired_streams"))


def judged_by(pg_url: str, after_id: int = 0) -> set[tuple[str, str]]:
    """(stream, owner) of every result recorded since lease history row ``after_id``."""
    rows = query(
        pg_url,
        "SELECT r.stream_id, r.owner FROM results r WHERE r.generation >"
        f" coalesce((SELECT max(generation) FROM lease_history WHERE id <= {after_id}), 0)",
    )
    return {(row[0], row[1]) for row in rows}


async def test_three_instances_share_the_streams_and_take_over_a_killed_ones(
    pg_url: str,
    mosquitto: Mosquitto,
    tmp_path: Path,
    quiet_media: tuple[bytes, float],
    daemons: list[DaemonProcess],
) -> None:
    media, seconds = quiet_media
    async with IcecastServer(media, seconds) as server:
        config = fleet_config(pg_url, mosquitto, server.url)
        for n in range(3):
            daemon = DaemonProcess(tmp_path / f"i{n}", config, instance=f"i{n}")
            daemons.append(daemon)
            await asyncio.to_thread(daemon.start)

        def spread() -> bool:
            held = Counter(owners(pg_url).values())
            return None not in held and sorted(held.values()) == [2, 2, 2]

        await eventually(spread, 120)
        # Every stream is judged and recorded under its lease.
        await eventually(lambda: {s for s, _ in judged_by(pg_url)} == set(STREAMS), 120)

        # kill -9 one instance: the other two judge its streams again.
        before = owners(pg_url)
        orphans = {s for s, owner in before.items() if owner == "i1"}
        mark = query(pg_url, "SELECT coalesce(max(id), 0) FROM lease_history")[0][0]
        daemons[1].kill()

        def taken_over() -> bool:
            judged = judged_by(pg_url, mark)
            return all(any(s == o and w in ("i0", "i2") for o, w in judged) for s in orphans)

        await eventually(taken_over, 120)
        kinds = query(pg_url, f"SELECT kind, from_owner FROM lease_history WHERE id > {mark}")
        assert {("takeover", "i1")} <= set(kinds)
        assert max(Counter(owners(pg_url).values()).values()) == 3  # 6 streams on 2 instances

        # SIGTERM another: it releases its leases after judging its tails; i0 claims them.
        mark = query(pg_url, "SELECT coalesce(max(id), 0) FROM lease_history")[0][0]
        daemons[2].signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemons[2].wait) == 0
        released = query(
            pg_url, f"SELECT stream_id FROM lease_history WHERE id > {mark} AND kind = 'release'"
        )
        assert len(released) == 3
        await eventually(lambda: set(owners(pg_url).values()) == {"i0"}, 60)
        kinds = query(pg_url, f"SELECT DISTINCT kind FROM lease_history WHERE id > {mark}")
        assert {k for (k,) in kinds} == {"release", "claim"}  # handed over, not taken over

        daemons[0].signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemons[0].wait) == 0
