"""The state stores of both backends behind their shared protocols, for tests that must hold
on either: SQLite in the test's directory (the embedded default), and fleet mode's
PostgreSQL in a fresh schema of the session's server, with an instance holding the leases
the fenced stores need to accept writes.

A test takes the ``backend`` fixture (``tests/conftest.py``: ids ``[sqlite]`` and
``[postgres]``) and asks it for the store it tests; ``reopen`` closes and opens the
database again, as a new process would find it. A file whose fixture serves many tests, few
of which touch a store, opens its stores with ``open_backend`` instead: SQLite unless the
test is marked ``ON_BOTH`` (the fixture ``stores``, parametrised indirectly)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import pytest

from streamguard.state.ams_tasks import AmsTaskStore, TaskStore
from streamguard.state.db import Database
from streamguard.state.dead_letters import DeadLetter, DeadLetters
from streamguard.state.desired import DesiredStreams
from streamguard.state.feedback import Feedback, FeedbackStore
from streamguard.state.incidents import IncidentHistory, IncidentStore
from streamguard.state.outbox import Outbox, OutboxStore
from streamguard.state.postgres.ams_tasks import PgTaskStore
from streamguard.state.postgres.database import Connection, PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.feedback import PgFeedback
from streamguard.state.postgres.fleet import Fence, Fleet
from streamguard.state.postgres.incidents import PgIncidentHistory
from streamguard.state.postgres.outbox import PgOutbox
from streamguard.state.postgres.results import PgResults
from streamguard.state.results import Results, ResultStore
from tests.support.fleet import hold

__all__ = ["BACKENDS", "ON_BOTH", "Backend", "BackendName", "open_backend"]

BackendName = Literal["sqlite", "postgres"]
BACKENDS: list[BackendName] = ["sqlite", "postgres"]

ON_BOTH = pytest.mark.parametrize("stores", BACKENDS, indirect=True)
"""Runs a test taking a ``stores`` fixture (``open_backend``) on both backends."""


@asynccontextmanager
async def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The stores of the backend a test asked for (``ON_BOTH``), else SQLite's."""
    name: BackendName = getattr(request, "param", "sqlite")
    url = request.getfixturevalue("pg_url") if name == "postgres" else None
    async with Backend(name, tmp_path, url) as stores:
        yield stores


INSTANCE = "test"
"""The instance the stores write as (``tests.support.fleet.hold``'s)."""


class Backend:
    """One backend's stores. ``db`` is the test's local SQLite in either case (what fleet
    mode keeps on the machine: the journal, the spool); ``pg`` the shared database on
    ``postgres``."""

    def __init__(self, name: BackendName, tmp_path: Path, pg_url: str | None) -> None:
        self.name = name
        self._path = tmp_path / "state.db"
        self._pg_url = pg_url
        self._stack = AsyncExitStack()
        self._fleet: Fleet | None = None

    @property
    def postgres(self) -> bool:
        return self.name == "postgres"

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        self.db = await self._stack.enter_async_context(Database(self._path))
        self.pg: PgDatabase | None = None
        if self._pg_url is not None:
            self.pg = await self._stack.enter_async_context(PgDatabase(self._pg_url))

    async def reopen(self) -> None:
        """Close the databases and open them again (stores made before are done with)."""
        await self._stack.aclose()
        self._stack = AsyncExitStack()
        await self._open()  # leases held stay held: the fences are the instance's own

    async def lease(self, *stream_ids: str) -> None:
        """Hold the leases of ``stream_ids`` (PostgreSQL; one machine needs none)."""
        if self.pg is not None:
            self._fleet = await hold(self.pg, list(stream_ids), self._fleet)

    def fence(self, stream_id: str) -> Fence | None:
        """The fence the fleet stores' writes about ``stream_id`` carry (``lease``)."""
        return None if self._fleet is None else self._fleet.fence(stream_id)

    def results(self) -> ResultStore:
        return Results(self.db) if self.pg is None else PgResults(self.pg, self.fence)

    def outbox(self, clock: Callable[[], float] | None = None) -> OutboxStore:
        if self.pg is None:
            return Outbox(self.db) if clock is None else Outbox(self.db, clock)
        if clock is None:
            return PgOutbox(self.pg, INSTANCE, dead_after=3600, fences=self.fence)
        return PgOutbox(self.pg, INSTANCE, dead_after=3600, clock=clock, fences=self.fence)

    async def dead_letters(self) -> list[DeadLetter]:
        """The outbox's dead letters, oldest first (PostgreSQL has no reader of its own:
        operators query the table)."""
        if self.pg is None:
            return await DeadLetters(self.db).list()

        async def read(conn: Connection) -> list[DeadLetter]:
            cursor = await conn.execute(
                "SELECT message_id, kind, topic, payload, created_at, failed_at, error"
                " FROM outbox_dead_letters ORDER BY failed_at, message_id"
            )
            return [DeadLetter(*row) for row in await cursor.fetchall()]

        return await self.pg.run(read)

    def incidents(self) -> IncidentStore:
        return IncidentHistory(self.db) if self.pg is None else PgIncidentHistory(self.pg)

    def feedback(self) -> FeedbackStore:
        return Feedback(self.db) if self.pg is None else PgFeedback(self.pg)

    def desired(self) -> DesiredStreams | PgDesiredStreams:
        return DesiredStreams(self.db) if self.pg is None else PgDesiredStreams(self.pg)

    def tasks(self) -> AmsTaskStore:
        if self.pg is None:
            return TaskStore(self.db)
        return PgTaskStore(
            self.pg,
            INSTANCE,
            self.fence,
            grace=60.0,
            scan_every=0.0,
            commit_window=0.0,
        )
