"""Session-wide real services for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from streamguard.demo.samples import room
from streamguard.ingest.encoder import encode_pcm
from streamguard.testing.broker import Mosquitto


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
