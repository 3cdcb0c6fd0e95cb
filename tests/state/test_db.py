"""The state database: transactions commit or roll back, migrations apply once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from streamguard.state.db import Database, StateError
from streamguard.state.schema import SCHEMA


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


async def test_opening_creates_every_table_of_the_schema(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db:
        names = await db.run(
            lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        )
        versions = await db.run(
            lambda c: dict(c.execute("SELECT component, version FROM schema_versions"))
        )
    expected = {
        "results",
        "feedback",
        "alerts_outbox",
        "alerts_incidents",
        "attached_streams",
        "daemon_heartbeat",
        "ams_segments",
        "desired_streams",
        "outbox_dead_letters",
    }
    assert expected <= names
    assert versions == {component: len(steps) for component, steps in SCHEMA.items()}


async def test_a_database_of_an_earlier_release_is_brought_up_to_date(tmp_path: Path) -> None:
    # As an earlier release left it: the AMS table at its first version only.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        conn.execute(SCHEMA["ams"][0])
        conn.execute("INSERT INTO schema_versions VALUES ('ams', 1)")
    async with Database(path) as db:
        columns = await db.run(
            lambda c: {r[1] for r in c.execute("PRAGMA table_info(ams_segments)")}
        )
        version = await db.run(
            lambda c: c.execute(
                "SELECT version FROM schema_versions WHERE component = 'ams'"
            ).fetchone()[0]
        )
    assert version == len(SCHEMA["ams"])
    assert "excerpt" in columns  # added by a later step
