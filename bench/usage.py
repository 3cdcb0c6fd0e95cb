"""``GET /v1/usage``'s query over a filled results table: the covering index against a scan.

    .venv/bin/python -m bench.usage [--rows 150000] [--days 60]

Fills a fresh state database (the real schema, FTS triggers included) with ``--rows``
results spread over ``--days`` days, with segment and verdict JSON of a realistic size, then
times the usage query for one week and for the whole range: as the daemon runs it (the
``results_usage`` covering index) and with the index refused (``NOT INDEXED``: a scan of
the table). Best of three; the figures are only comparable within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamguard.state.db import Database
from streamguard.state.usage import USAGE_QUERY

START = datetime(2026, 10, 1, tzinfo=UTC)
SEGMENT = json.dumps({"segment_id": "s" * 60, "metadata": {"k": "v" * 200}, "seq": 1})
VERDICT = json.dumps(
    {"text": "hello there, a transcript of fifteen seconds of talk " * 4, "details": "d" * 300}
)


def fill(conn: sqlite3.Connection, rows: int, days: int) -> None:
    rng = random.Random(0)
    outcomes = ["moderated"] * 6 + ["no_speech"] * 3 + ["failed"]
    values = []
    for n in range(rows):
        at = (START + timedelta(seconds=n * days * 86_400 // rows)).isoformat()
        outcome, label = rng.choice(outcomes), rng.choice(["Normal"] * 9 + ["Abuse"])
        ids = (f"seg-{n}", f"s{n % 100}", f"r{n % 100}", n, at, at, 15.0)
        values.append((*ids, outcome, "Pass", label, 0, "none", "local", "", SEGMENT, VERDICT))
    conn.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", values)
    conn.commit()


def best_of_three(conn: sqlite3.Connection, sql: str, since: str, until: str) -> float:
    timings = []
    for _ in range(3):
        began = time.perf_counter()
        conn.execute(sql, (since, until)).fetchall()
        timings.append(time.perf_counter() - began)
    return min(timings)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "streamguard.db"

        async def create() -> None:
            async with Database(path):
                pass

        asyncio.run(create())
        with sqlite3.connect(path) as conn:
            began = time.perf_counter()
            fill(conn, args.rows, args.days)
            print(
                f"{args.rows} results over {args.days} days written in "
                f"{time.perf_counter() - began:.1f} s (a shared machine: compare within a run)"
            )
            week = (
                (START + timedelta(days=31)).isoformat(),
                (START + timedelta(days=38)).isoformat(),
            )
            for name, sql in (
                ("covering index", USAGE_QUERY),
                ("table scan", USAGE_QUERY.replace("INDEXED BY results_usage", "NOT INDEXED")),
            ):
                for span, (since, until) in (("one week", week), ("every day", ("0", "9"))):
                    took = best_of_three(conn, sql, since, until)
                    print(f"{name:>14}, {span:>9}: {took * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
