"""The PostgreSQL database: a small pool of async connections (psycopg 3), every ``run`` one
transaction, errors converted at the boundary like the SQLite ``Database`` does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
import psycopg_pool
from psycopg import AsyncConnection

from streamguard.state.db import StateError, StorageUnavailable
from streamguard.state.postgres.nul import nul_free
from streamguard.state.postgres.schema import SCHEMA

__all__ = ["Connection", "PgDatabase", "StaleWrite"]

T = TypeVar("T")

Connection = AsyncConnection[tuple[Any, ...]]
"""What a ``run`` function receives."""

CONNECT_SECONDS = 5.0
"""How long a ``run`` waits for a connection (a database that is down answers with
``StorageUnavailable`` after this long, and the spool keeps the write)."""

IDLE_IN_TRANSACTION_MS = 5_000

MIGRATION_LOCK = 0x5354_4755  # "STGU": instances starting together migrate one at a time


class StaleWrite(StateError):
    """A write refused because its stream's lease moved on: this instance no longer owns it
    (its generation is not the current one). Never retried: the new owner writes instead."""

    def __init__(self, stream_id: str, generation: int | None) -> None:
        super().__init__(
            f"stream {stream_id!r}: write refused, this instance holds no lease on it"
            if generation is None
            else f"stream {stream_id!r}: write refused, generation {generation} is not the "
            "stream's current lease"
        )
        self.stream_id = stream_id
        self.generation = generation


class PgDatabase:
    """Owns the pool; ``open`` connects and brings the schema up to date (under an advisory
    lock, so instances starting together do not race); ``await db.run(fn)`` runs
    ``await fn(connection)`` in one transaction.

    ``queries`` counts the transactions run (for the fleet's load figures)."""

    def __init__(self, url: str, *, password: str | None = None, size: int = 4) -> None:
        self.url = url
        # A transaction left open by a process that froze (SIGSTOP, a stalled VM) would keep
        # its row locks, and the lease it share-locked could never be taken over: the
        # server ends such a session.
        # Autocommit: a ``run`` is still one transaction (BEGIN … COMMIT), and a ``once``
        # (one statement) is its own, without the BEGIN and COMMIT statements around it.
        kwargs: dict[str, Any] = {
            "connect_timeout": CONNECT_SECONDS,
            "options": _options(url),
            "autocommit": True,
        }
        if password is not None:
            kwargs["password"] = password
        self._pool = psycopg_pool.AsyncConnectionPool(
            url,
            kwargs=kwargs,
            min_size=1,
            max_size=size,
            open=False,
            timeout=CONNECT_SECONDS,
            name="state.postgres",
            configure=nul_free,  # a transcript's NUL would refuse its whole unit of work
        )
        self.queries = 0

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
        try:
            await self._pool.open(wait=True, timeout=CONNECT_SECONDS)
        except psycopg_pool.PoolTimeout as exc:
            await self._pool.close()
            raise StateError(f"cannot connect to the state database {self.where}") from exc
        try:
            await self.run(_migrate)
        except BaseException:
            await self._pool.close()
            raise

    @property
    def where(self) -> str:
        """The database's URL without credentials, for messages."""
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        return f"{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    async def close(self) -> None:
        await self._pool.close()

    async def check(self) -> tuple[bool, str]:
        """A readiness check: (True, "reachable") once a query went through."""
        try:
            await self.run(_ping)
        except StateError as exc:
            return False, str(exc)
        return True, "reachable"

    async def run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``await fn(connection)`` in one transaction: committed when it returns, rolled
        back when it raises."""
        return await self._run(fn, transaction=True)

    async def once(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``await fn(connection)``, which runs ONE statement: its own transaction, with
        no BEGIN and COMMIT around it (a statement run outside a transaction block is one)."""
        return await self._run(fn, transaction=False)

    async def _run(self, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool) -> T:
        self.queries += 1
        try:
            async with self._pool.connection() as conn:
                if not transaction:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)
        except psycopg_pool.PoolTimeout as exc:
            raise StorageUnavailable(f"state database {self.where}: unreachable") from exc
        except psycopg.OperationalError as exc:
            # The server is away, restarting or refusing connections: the same write may
            # pass later, unchanged.
            raise StorageUnavailable(f"state database {self.where}: {exc}") from exc
        except psycopg.Error as exc:
            raise StateError(f"state database {self.where}: {exc}") from exc


def _options(url: str) -> str:
    """The URL's own server options, and ours."""
    given = str(psycopg.conninfo.conninfo_to_dict(url).get("options", ""))
    return f"{given} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}".strip()


async def _ping(conn: Connection) -> None:
    await conn.execute("SELECT 1")


async def _migrate(conn: Connection) -> None:
    """Apply every component's missing steps, one instance at a time."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions"
        " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    for component, statements in SCHEMA.items():
        cursor = await conn.execute(
            "SELECT version FROM schema_versions WHERE component = %s", (component,)
        )
        row = await cursor.fetchone()
        version = row[0] if row else 0
        for statement in statements[version:]:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_versions (component, version) VALUES (%s, %s)"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, len(statements)),
        )
