"""``[state]``: the embedded SQLite by default, another SQLite file, or a shared PostgreSQL
(fleet mode); bad URLs are refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamguard.config import Config
from streamguard.config.state import StateConfig


def test_no_url_is_the_embedded_sqlite_file_as_before(tmp_path: Path) -> None:
    config = Config.model_validate({"instance": {"state_dir": str(tmp_path)}})
    assert not config.state.fleet
    assert config.sqlite_path() == tmp_path / "streamguard.db"
    assert config.sqlite_path(tmp_path / "other") == tmp_path / "other" / "streamguard.db"


def test_a_sqlite_url_names_the_file(tmp_path: Path) -> None:
    absolute = Config.model_validate({"state": {"url": f"sqlite://{tmp_path}/x.db"}})
    assert absolute.sqlite_path() == tmp_path / "x.db"
    relative = Config.model_validate(
        {"instance": {"state_dir": str(tmp_path)}, "state": {"url": "sqlite:y.db"}}
    )
    assert relative.sqlite_path() == tmp_path / "y.db"


def test_a_postgresql_url_is_fleet_mode_and_keeps_a_local_file_beside(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "instance": {"state_dir": str(tmp_path)},
            "state": {"url": "postgresql://sg@db.internal:5432/streamguard", "capacity": 40},
        }
    )
    assert config.state.fleet
    assert config.state.capacity == 40
    assert config.sqlite_path() == tmp_path / "streamguard.db"


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ({"url": "mysql://db/x"}, "unknown scheme 'mysql'"),
        ({"url": "postgresql://sg:hunter2@db/x"}, "password in the URL"),
        ({"url": "postgresql://db"}, "needs a host and a database name"),
        ({"url": "sqlite://"}, "needs a path"),
        ({"capacity": 3}, "fleet mode only"),
        ({"lease_seconds": 1}, "greater than or equal to 3"),
        ({"write_batch_seconds": -0.1}, "greater than or equal to 0"),
        ({"write_batch_seconds": 30}, "less than or equal to 5"),
    ],
)
def test_bad_state_is_refused_with_a_reason(state: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words) as caught:
        StateConfig.model_validate(state)
    # What check-config prints is the message (never the input): no password in it.
    assert all("hunter2" not in error["msg"] for error in caught.value.errors())
