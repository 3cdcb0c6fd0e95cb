"""Fleet mode end to end, with media: what a stream costs the fleet, next to ffmpeg's floor.

    .venv/bin/python -m bench.fleet_media [--streams 30] [--instances 3] [--runs 3]
                                          [--seconds 60] [--lease 15]

Per run: a test PostgreSQL (``streamguard/testing/postgres.py``, a fresh database per run),
mosquitto, the AMS emulator (in this process; its judge is the soak's ``PilotJudge``, a fake
at our engine seam: the room's abusive turn carries a quiet pilot tone) and ``--instances``
daemons (``streamguard run``, fleet mode on the database, the AMS engine: ingest → speech
gate → AMS emulator → alerts over MQTT; with ``--clean-rooms`` the judge passes every
clip, so nothing alerts and no evidence clip is encoded). ``--streams`` rooms, all attached
in the config, play the soak's room (speech turns between pauses, MP3 64 kbit/s) live from a paced
Icecast-like server in its own process on loopback; every room is its own connection.

Once every stream is owned and the fleet has been running ``--warmup`` seconds, for
``--seconds``: the daemons' CPU (``/proc/PID/stat``, all threads) and, in the same window,
``--streams`` ffmpeg processes each decoding and resampling one room to 16 kHz mono into a
null output (``ffmpeg -i URL -ac 1 -ar 16000 -f s16le /dev/null``), the practical floor;
the database's transactions (``pg_stat_database``: every statement outside a transaction
is one), statements (``pg_stat_statements``, loaded for the bench) and rows written, per
stream per minute. Then ``kill -9`` of the instance holding the most streams:
the time from the kill until each of its streams is claimed by another instance (p50, max).
It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from bench.ingest import LiveServer, proc_cpu
from bench.soak.daemon import Daemon
from bench.soak.media import PilotJudge, broadcast
from bench.soak.world import ENV, SECRET_ID, SECRET_KEY
from streamguard.core.segment import Segment
from streamguard.core.verdict import Suggestion, Verdict
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from streamguard.testing.postgres import PostgresServer

SEGMENT_SECONDS = 15


class CleanJudge(PilotJudge):
    """The soak's judge with the pilot ignored: every room is clean, nothing alerts (so no
    evidence clip is encoded), to tell what alerting costs."""

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        verdict = await super().moderate(segment, biz_type=biz_type)
        if not verdict.hit:
            return verdict
        return replace(verdict, suggestion=Suggestion.PASS, label="", sub_label="", hit=False)


@dataclass(frozen=True)
class RunFigures:
    streams: int
    ours: float  # share of a core per stream, all instances
    floor: float  # share of a core per ffmpeg process
    queries_per_stream_minute: float
    takeover: list[float]
    held: list[int]
    writes: dict[str, float]  # rows inserted, updated or deleted per stream per minute, by table
    statements: list[tuple[float, str]]  # calls per stream per minute, by statement

    @property
    def ratio(self) -> float:
        return self.ours / self.floor


def config(
    workdir: Path,
    instance: str,
    *,
    api_port: int,
    pg_url: str,
    lease: float,
    broker_port: int,
    emulator_url: str,
    room_url: str,
    streams: int,
) -> str:
    """One instance's TOML: fleet mode, AMS through the emulator, the rooms in the file."""
    head = f"""
[instance]
id = "{instance}"
state_dir = "{workdir / "state"}"
shutdown_seconds = 30
[api]
port = {api_port}
[state]
url = "{pg_url}"
lease_seconds = {lease}
[mqtt]
host = "127.0.0.1"
port = {broker_port}
topic_prefix = "bench"
[ingest]
segment_seconds = {SEGMENT_SECONDS}
[engine]
type = "ams"
endpoint = "{emulator_url}"
delivery_listen = "127.0.0.1:{free_port()}"
"""
    rooms = "".join(
        f'[[streams]]\nid = "room-{n:03d}"\nurl = "{room_url}?room={n}"\nroom = "room-{n:03d}"\n'
        for n in range(streams)
    )
    return head + rooms


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def owners(url: str) -> dict[str, str | None]:
    return {str(s): (None if o is None else str(o)) for s, o in query(url, _OWNERS)}


_OWNERS = "SELECT stream_id, owner FROM desired_streams"
_XACTS = (
    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
)


_WRITES = (
    "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
    " WHERE schemaname = current_schema()"
)


def transactions(server: PostgresServer, pg_url: str) -> tuple[int, dict[str, int]]:
    """The database's transactions so far, and the rows written so far by table."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(_XACTS).fetchone()
    assert row is not None
    writes = {str(table): int(str(n)) for table, n in query(pg_url, _WRITES)}
    return int(str(row[0])), writes


def count_statements(server: PostgresServer) -> None:
    """Load pg_stat_statements (a restart of the server), to count statements by kind."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    server.stop()
    server.start()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


_STATEMENTS = (
    "SELECT calls, query FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'"
    " ORDER BY calls DESC"
)


def statements(server: PostgresServer, *, reset: bool) -> list[tuple[int, str]]:
    """Statements run since the last reset, most called first (and reset, if asked)."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        rows = [(int(str(n)), " ".join(str(q).split())) for n, q in conn.execute(_STATEMENTS)]
        if reset:
            conn.execute("SELECT pg_stat_statements_reset()")
    return rows


async def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:g} s")
        await asyncio.sleep(0.25)


async def start_ffmpeg(url: str, streams: int) -> list[asyncio.subprocess.Process]:
    return [
        await asyncio.create_subprocess_exec(
            *("ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", f"{url}?ffmpeg={n}"),
            *("-ac", "1", "-ar", "16000", "-f", "s16le", "/dev/null"),
        )
        for n in range(streams)
    ]


async def one_run(
    server: PostgresServer, broker: Mosquitto, room_url: str, args: argparse.Namespace, run: int
) -> RunFigures:
    pg_url = server.create_database()
    options = EmulatorOptions(
        keys={SECRET_ID: SECRET_KEY},
        slice_seconds=15,
        processing_factor=0.05,
        ondemand_concurrency=40,
    )
    with tempfile.TemporaryDirectory(prefix="sg-fleet-media-") as tmp:
        daemons: list[Daemon] = []
        judge = CleanJudge() if args.clean_rooms else PilotJudge()
        async with AmsEmulator(judge, options) as emulator:
            try:
                for n in range(args.instances):
                    workdir = Path(tmp) / f"i{n}"
                    (workdir / "state").mkdir(parents=True)
                    daemon = Daemon(workdir, free_port(), ENV)
                    daemon.config.write_text(
                        config(
                            workdir,
                            f"i{n}",
                            api_port=daemon.api_port,
                            pg_url=pg_url,
                            lease=args.lease,
                            broker_port=broker.port,
                            emulator_url=emulator.url,
                            room_url=room_url,
                            streams=args.streams,
                        ),
                        encoding="utf-8",
                    )
                    await asyncio.to_thread(daemon.start)
                    daemons.append(daemon)
                return await measure(server, pg_url, room_url, daemons, args)
            finally:
                for daemon in daemons:
                    if daemon.process is not None:
                        await asyncio.to_thread(daemon.stop)


async def measure(
    server: PostgresServer,
    pg_url: str,
    room_url: str,
    daemons: list[Daemon],
    args: argparse.Namespace,
) -> RunFigures:
    share = -(-args.streams // args.instances)

    def spread() -> bool:
        held = list(owners(pg_url).values())
        counts = [held.count(f"i{n}") for n in range(len(daemons))]
        return None not in held and max(counts) <= share + 1

    await wait_until(spread, 180, "every stream owned and spread")
    floor = await start_ffmpeg(room_url, args.streams)
    try:
        await asyncio.sleep(args.warmup)
        pids = [d.process.pid for d in daemons if d.process is not None]
        ours_before = [proc_cpu(pid) for pid in pids]
        floor_before = [proc_cpu(p.pid) for p in floor]
        xacts_before, writes_before = await asyncio.to_thread(transactions, server, pg_url)
        await asyncio.to_thread(statements, server, reset=True)
        await asyncio.sleep(args.seconds)
        ours = sum(proc_cpu(pid) - b for pid, b in zip(pids, ours_before, strict=True))
        theirs = sum(proc_cpu(p.pid) - b for p, b in zip(floor, floor_before, strict=True))
        xacts_after, writes_after = await asyncio.to_thread(transactions, server, pg_url)
        ran = await asyncio.to_thread(statements, server, reset=False)
        xacts = xacts_after - xacts_before
        if any(p.returncode is not None for p in floor):
            raise RuntimeError("an ffmpeg reader exited early")
    finally:
        for p in floor:
            if p.returncode is None:
                p.terminate()
        for p in floor:
            await p.wait()
    held = owners(pg_url)
    counts = [list(held.values()).count(f"i{n}") for n in range(len(daemons))]
    takeover = await kill_one(pg_url, daemons, counts)
    return RunFigures(
        streams=args.streams,
        ours=ours / args.seconds / args.streams,
        floor=theirs / args.seconds / args.streams,
        queries_per_stream_minute=xacts / args.streams / (args.seconds / 60),
        takeover=takeover,
        held=counts,
        writes={
            table: (n - writes_before.get(table, 0)) / args.streams / (args.seconds / 60)
            for table, n in writes_after.items()
            if n > writes_before.get(table, 0)
        },
        statements=[(n / args.streams / (args.seconds / 60), q) for n, q in ran],
    )


async def kill_one(pg_url: str, daemons: list[Daemon], counts: list[int]) -> list[float]:
    """kill -9 the instance holding most streams; seconds until each of them is claimed."""
    index = counts.index(max(counts))
    name = f"i{index}"
    orphans = {s for s, o in owners(pg_url).items() if o == name}
    await asyncio.to_thread(daemons[index].kill)
    killed = time.monotonic()
    claimed: dict[str, float] = {}

    def all_claimed() -> bool:
        now = time.monotonic()
        for stream, owner in owners(pg_url).items():
            if stream in orphans and owner not in (None, name):
                claimed.setdefault(stream, now - killed)
        return len(claimed) == len(orphans)

    await wait_until(all_claimed, 180, "the killed instance's streams claimed")
    return sorted(claimed.values())


def report(runs: list[RunFigures], args: argparse.Namespace) -> None:
    print(f"fleet end to end: {args.instances} instances, {args.streams} live streams, AMS engine")
    for n, r in enumerate(runs, 1):
        print(
            f"  run {n}: ours {r.ours * 100:.2f}% of a core per stream, ffmpeg decode+resample "
            f"{r.floor * 100:.2f}% ({r.ratio:.2f}x, target <= 1.3); "
            f"{r.queries_per_stream_minute:.2f} database transactions per stream per minute; "
            f"held {r.held}; takeover after kill -9 of {len(r.takeover)} streams: p50 "
            f"{statistics.median(r.takeover):.1f} s, max {max(r.takeover):.1f} s"
        )
        rows = ", ".join(f"{t} {n:.2f}" for t, n in sorted(r.writes.items(), key=lambda i: -i[1]))
        print(f"    rows written per stream per minute: {rows}")
        total = sum(calls for calls, _ in r.statements)
        print(f"    statements per stream per minute: {total:.2f}; the most run:")
        for calls, text in r.statements[:16]:
            print(f"      {calls:6.2f}  {text[:110]}")
    ratios = [r.ratio for r in runs]
    print(f"  ratio range {min(ratios):.2f}-{max(ratios):.2f}x over {len(runs)} runs")


async def bench(args: argparse.Namespace) -> None:
    media, seconds = await asyncio.to_thread(broadcast, 1800)
    with tempfile.TemporaryDirectory(prefix="sg-fleet-media-") as tmp:
        path = Path(tmp) / "room.mp3"
        path.write_bytes(media)
        broker = Mosquitto(Path(tmp))
        await asyncio.to_thread(broker.start)
        try:
            with PostgresServer() as server, LiveServer(path, seconds) as room:
                await asyncio.to_thread(count_statements, server)
                runs = []
                for run in range(args.runs):
                    figures = await one_run(server, broker, room.url, args, run)
                    runs.append(figures)
                    report([figures], args)
        finally:
            await asyncio.to_thread(broker.stop)
    report(runs, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=30)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument(
        "--clean-rooms", action="store_true", help="the judge passes everything: no alerts"
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
