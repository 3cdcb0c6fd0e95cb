"""The desired set of API-attached streams: kept whole, replaced, forgotten, read back; on
both backends (``backend``) but for the SQLite row that is not JSON."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from streamguard.config.streams import StreamConfig
from streamguard.state.db import Database
from streamguard.state.desired import DesiredStreams, Origin
from tests.support.backends import Backend

STREAM = StreamConfig(
    id="room-7",
    url="https://user:secret@live.example.invalid/room-7.m3u8?token=abc",
    room="seven",
    profile="kids",
    segment_seconds=30,
    metadata={"host": "ann", "lang": "en"},
)


async def test_a_kept_stream_comes_back_whole_after_reopening(backend: Backend) -> None:
    await backend.desired().put(STREAM)
    await backend.reopen()
    kept = await backend.desired().all()
    assert [(k.stream_id, k.origin) for k in kept] == [("room-7", Origin.API)]
    assert StreamConfig.model_validate(kept[0].config) == STREAM  # URL and all


async def test_put_replaces_and_remove_forgets(backend: Backend) -> None:
    desired = backend.desired()
    await desired.put(STREAM)
    await desired.put(STREAM.model_copy(update={"id": "other"}))
    changed = STREAM.model_copy(update={"metadata": {"host": "bob"}, "segment_seconds": 15})
    await desired.put(changed)
    kept = {k.stream_id: k.config for k in await desired.all()}
    assert kept["room-7"]["metadata"] == {"host": "bob"}
    assert kept["room-7"]["segment_seconds"] == 15
    assert list(kept) == ["room-7", "other"]  # oldest first, a change keeps its place
    assert await desired.remove("room-7")
    assert not await desired.remove("room-7")
    assert [k.stream_id for k in await desired.all()] == ["other"]


async def test_only_the_origin_asked_for_is_read(backend: Backend) -> None:
    desired = backend.desired()
    await desired.put(STREAM, Origin.CONFIG)
    assert await desired.all() == []
    assert [k.stream_id for k in await desired.all(Origin.CONFIG)] == ["room-7"]


# SQLite only: PostgreSQL keeps the config as jsonb, which cannot hold a row that is not JSON.
async def test_an_unreadable_row_is_returned_empty_not_raised(tmp_path: Path) -> None:
    async with Database(tmp_path / "s.db") as db:
        await DesiredStreams(db).put(STREAM)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE desired_streams SET config = '[not json'")
    async with Database(tmp_path / "s.db") as db:
        kept = await DesiredStreams(db).all()
    assert [(k.stream_id, k.config) for k in kept] == [("room-7", {})]
