"""Session-wide real services for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One real broker per test session; tests may stop and restart it (then restart it)."""
    broker = Mosquitto(Path(tmp_path_factory.mktemp("mosquitto")))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
