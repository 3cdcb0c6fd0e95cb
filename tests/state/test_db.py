"""The state database: transactions commit or roll back, migrations apply once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from streamguard.state.db import Database, StateError


async def test_migrations_apply_once_and_survive_reopen(tmp_path: Path) -> None:
    steps = ["CREATE TABLE t (x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"]
    async with Database(tmp_path / "s.db") as db:
        await db.migrate("demo", steps)
        await db.run(lambda c: c.execute("INSERT INTO t VALUES (1, 'a')"))
    async with Database(tmp_path / "s.db") as db:
        await db.migrate("demo", steps)  # must not re-run: the table exists
        rows = await db.run(lambda c: c.execute("SELECT x, y FROM t").fetchall())
    assert [tuple(r) for r in rows] == [(1, "a")]


async def test_a_failing_transaction_leaves_nothing(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db:
        await db.migrate("demo", ["CREATE TABLE t (x INTEGER UNIQUE)"])

        def insert_twice(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("INSERT INTO t VALUES (1)")

        with pytest.raises(StateError, match="UNIQUE"):
            await db.run(insert_twice)
        count = await db.run(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
    assert count == 0


async def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    db = Database(blocker / "s.db")
    with pytest.raises(StateError, match="cannot open state database"):
        await db.open()
    await db.close()
