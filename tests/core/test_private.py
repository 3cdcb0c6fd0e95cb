"""Owner-only state: directories 0700 and files 0600 whatever the umask, including the files
SQLite and the encoder write."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamguard.core.private import private_dir, private_file, write_private
from streamguard.ingest.encoder import ClipFormat, encode_pcm
from streamguard.state.db import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def lax_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what a shell or a container usually has
    try:
        yield
    finally:
        os.umask(old)


def test_missing_directories_are_created_owner_only(tmp_path: Path) -> None:
    (tmp_path / "existing").mkdir(mode=0o755)
    target = private_dir(tmp_path / "existing" / "a" / "b")
    assert target.is_dir()
    assert mode(tmp_path / "existing") == 0o755  # not ours to change
    assert mode(tmp_path / "existing" / "a") == 0o700
    assert mode(target) == 0o700
    assert private_dir(target) == target  # already there: fine


def test_files_are_created_owner_only_and_tightened(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"x")
    old.chmod(0o644)
    private_file(old)
    write_private(tmp_path / "new", b"data")
    assert (mode(old), old.read_bytes()) == (0o600, b"x")
    assert mode(tmp_path / "new") == 0o600
    assert (tmp_path / "new").read_bytes() == b"data"


async def test_the_database_and_its_journal_are_owner_only(tmp_path: Path) -> None:
    async with Database(tmp_path / "state" / "streamguard.db") as db:
        await db.run(lambda conn: conn.execute("CREATE TABLE t (x)"))
        journal = [p for p in (tmp_path / "state").iterdir() if p.name != "streamguard.db"]
        assert journal  # WAL mode: -wal and -shm beside the database
        assert {p.name: mode(p) for p in journal} == dict.fromkeys((p.name for p in journal), 0o600)
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "streamguard.db") == 0o600


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "m4a"])
def test_encoded_clips_are_owner_only(tmp_path: Path, fmt: ClipFormat) -> None:
    clip = encode_pcm(np.zeros(16_000, dtype=np.int16), tmp_path / f"a.{fmt}", fmt)
    assert mode(clip.path) == 0o600
