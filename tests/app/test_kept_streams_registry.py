"""``Streams.restore`` in this process, on a real database: kept API streams that can no longer
run are held and reported with their reason, never raised."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from streamguard.config.ingest import IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.metrics import Metrics
from streamguard.core.status import StreamState
from streamguard.moderation.profiles import Profiles
from streamguard.state.db import Database
from streamguard.state.desired import DesiredStreams
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.registry import Streams
from streamguard.testing.engines import ToneEngine


class Seen:
    """Records the states ``on_state`` was told of, by stream id."""

    def __init__(self) -> None:
        self.states: list[tuple[str, StreamState, str | None]] = []

    async def state(self, stream: StreamConfig, state: StreamState, error: str | None) -> None:
        self.states.append((stream.id, state, error))

    async def result(self, stream: StreamConfig, result: SegmentResult) -> None:
        pass


@asynccontextmanager
async def registry(db: Database, seen: Seen, *, files: bool) -> AsyncIterator[Streams]:
    async def on_attach(stream: StreamConfig) -> None:
        pass

    async with Streams(
        ingest=IngestConfig(allow_local_files=True),
        engine=ToneEngine(),
        clip_dir=db.path.parent / "clips",
        on_result=seen.result,
        on_state=seen.state,
        metrics=Metrics(),
        api_allows_files=files,
        profiles=Profiles({"default": ProfileConfig()}),
        on_attach=on_attach,
        desired=DesiredStreams(db),
    ) as streams:
        yield streams


async def test_kept_streams_that_cannot_run_are_held_with_their_reason(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Database(path) as db:
        desired = DesiredStreams(db)
        await desired.put(StreamConfig(id="file", url=str(tmp_path / "missing.wav")))
        await desired.put(StreamConfig(id="odd", url="http://127.0.0.1:9/x", room="r"))
    with sqlite3.connect(path) as conn:  # as a later release's rules might see it
        conn.execute(
            "UPDATE desired_streams SET config = json_set(config, '$.segment_seconds', 20)"
            " WHERE stream_id = 'odd'"
        )
    seen = Seen()
    async with Database(path) as db, registry(db, seen, files=False) as streams:
        assert await streams.restore() == []
        reports = {r.stream_id: r for r in streams.reports()}
        assert {i: r.state for i, r in reports.items()} == {
            "file": StreamState.FAILED,
            "odd": StreamState.FAILED,
        }
        assert "'file' is not allowed" in (reports["file"].last_error or "")
        assert "segment_seconds" in (reports["odd"].last_error or "")
        assert reports["odd"].to_json()["room"] == "r"  # shown as kept
        assert [(i, s) for i, s, _ in seen.states] == [
            ("file", StreamState.FAILED),
            ("odd", StreamState.FAILED),
        ]
        # Still kept, until a DELETE.
        assert await streams.detach("odd")
        assert [k.stream_id for k in await DesiredStreams(db).all()] == ["file"]
        assert streams.report("odd") is None
