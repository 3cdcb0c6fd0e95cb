"""Session-wide real services for the tests."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import av
import pytest

from streamguard.demo.samples import room
from streamguard.ingest.encoder import encode_pcm
from streamguard.testing.broker import Mosquitto
from streamguard.testing.postgres import PostgresServer
from tests.support.backends import BACKENDS, Backend


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One real broker per test session; tests may stop and restart it (then restart it)."""
    broker = Mosquitto(Path(tmp_path_factory.mktemp("mosquitto")))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server of its own per test session (never the machine's), on a
    free port in a temporary directory; tests may stop, kill and start it (then start it)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's server, for one test."""
    postgres.start()  # a test that stopped it and failed before starting it again
    return postgres.create_database()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The state stores of one backend (ids ``[sqlite]``, ``[postgres]``): a store test
    taking this holds on both (``tests/support/backends.py``)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    async with Backend(request.param, tmp_path, url) as stores:
        yield stores


@pytest.fixture(scope="session")
def room_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample room (neutral talk, then "Shut up, you idiot. I will kill you.")."""
    path = tmp_path_factory.mktemp("room") / "room.mp3"
    encode_pcm(room(), path, "mp3", 64_000)
    return path


@pytest.fixture(scope="session")
def room_media(room_mp3: Path) -> tuple[bytes, float]:
    """The sample room's mp3 bytes and its length in seconds, for a broadcast server."""
    with av.open(str(room_mp3)) as container:
        assert container.duration is not None
        return room_mp3.read_bytes(), container.duration / 1_000_000


@pytest.fixture(scope="module", autouse=True)
def _collect_garbage_after_each_file() -> Iterator[None]:
    """Collect garbage once a test file is done, so that a socket, transport or file left
    unclosed and held in a reference cycle fails that file's last test, not whichever later
    test happens to trigger the collector. Set up before the file's other module fixtures, so
    torn down after them, and inside the runner's teardown, so before pytest collects the
    unraisable warnings of that teardown (a ``pytest_runtest_teardown`` hook of our own ran
    after that collection, and the warning landed on the next file's first test). Once per
    file: a full collection costs tens of milliseconds."""
    yield
    gc.collect()
