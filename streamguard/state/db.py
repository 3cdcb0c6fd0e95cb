"""The SQLite database: one connection, used from one worker thread, never from the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from streamguard.core.errors import StreamGuardError
from streamguard.core.private import FILE_MODE, private_dir, private_file
from streamguard.state.schema import SCHEMA

__all__ = ["Database", "StateError", "StorageUnavailable"]

T = TypeVar("T")

# SQLite's primary result codes that say "the storage refused", not "this write is wrong":
# the disk is full or failing, the file turned read-only, or another process holds a lock.
# The same write can succeed later, unchanged.
_STORAGE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
    }
)


class StateError(StreamGuardError):
    """The state database could not be opened or written."""


class StorageUnavailable(StateError):
    """The storage refused a write that may succeed later as it is (disk full, I/O error,
    read-only, locked): what ``state.spool`` keeps and retries."""


def _state_error(message: str, exc: sqlite3.Error) -> StateError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _STORAGE_CODES:
        return StorageUnavailable(message)
    return StateError(message)


class Database:
    """Owns the SQLite connection and the one thread that touches it.

    Opening applies the whole schema (``state.schema``); work runs as ``await db.run(fn)``
    where ``fn`` receives the connection. Every ``run`` is a
    transaction: committed when ``fn`` returns, rolled back when it raises.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state.sqlite")
        self._conn: sqlite3.Connection | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and bring every table up to the current schema."""
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)
        for component, statements in SCHEMA.items():
            await self.migrate(component, statements)

    def _connect(self) -> sqlite3.Connection:
        try:
            self._make_private()
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions"
                " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except OSError as exc:
            raise StateError(f"cannot open state database {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise _state_error(f"cannot open state database {self.path}: {exc}", exc) from exc
        return conn

    def _make_private(self) -> None:
        """The database holds transcripts and stream URLs: owner-only, whatever the umask.
        SQLite gives its journal files the database file's mode; ones left by an older,
        laxer version are tightened too."""
        private_dir(self.path.parent)
        private_file(self.path)
        for journal in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{journal}", FILE_MODE)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in one transaction on the database thread."""
        if self._conn is None:
            raise StateError("state database is not open")
        conn = self._conn

        def transaction() -> T:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    _roll_back(conn)
                    raise
                return result
            except sqlite3.Error as exc:
                raise _state_error(f"state database {self.path}: {exc}", exc) from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, transaction)

    async def migrate(self, component: str, statements: list[str]) -> None:
        """Apply ``statements[n:]`` for a component at schema version ``n``, in one
        transaction (``open`` does this for every component of ``state.schema``)."""

        def apply(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
            version = row[0] if row else 0
            for statement in statements[version:]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(statements)),
            )

        await self.run(apply)


def _roll_back(conn: sqlite3.Connection) -> None:
    """End a failed transaction. A full disk or an I/O error may have rolled it back already
    (a COMMIT that fails with SQLITE_FULL does): then there is nothing to end, and the
    error that matters is the one being raised, not ROLLBACK's "no transaction is active".
    A transaction left open would make every later ``BEGIN`` fail, for good."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
