"""Feedback on a video frame's result is accepted (as ``frame_id``, or as the ``segment_id``
the results list it under) and counted apart from the audio's by ``GET /v1/feedback``, with
the SQLite store and with fleet mode's shared PostgreSQL one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from streamguard.api.routes import build_api
from streamguard.api.schemas import CONSOLE_SCHEMAS
from streamguard.core.frame import frame_id
from streamguard.core.segment import segment_id
from streamguard.core.serving import start_site
from streamguard.state.db import Database
from streamguard.state.feedback import Feedback, FeedbackStore
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.feedback import PgFeedback
from streamguard.state.results import Results
from tests.fleet.test_streams_api import Running

TOKEN = "operator-token-0123"
ATTACHED = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
FRAME = frame_id("room-1", ATTACHED, 7)
SEGMENT = segment_id("room-1", ATTACHED, 7)


@pytest.fixture(params=["sqlite", "postgres"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(Database(tmp_path / "state.db"))
        store: FeedbackStore = Feedback(sqlite)
        if request.param == "postgres":
            pg_url: str = request.getfixturevalue("pg_url")
            store = PgFeedback(await stack.enter_async_context(PgDatabase(pg_url)))
        app = build_api(
            streams=Running(list),
            results=Results(sqlite),
            feedback=store,
            registry=CollectorRegistry(),
            readiness={},
            token=TOKEN,
        )
        runner, port = await start_site(app, "127.0.0.1", 0)
        stack.push_async_callback(runner.cleanup)
        yield f"http://127.0.0.1:{port}"


async def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, base + path, json=body, headers=auth) as response,
    ):
        return response.status, await response.json()


async def test_feedback_on_frames_is_counted_apart_from_the_audio(api: str) -> None:
    given = [
        {"kind": "false_positive", "frame_id": FRAME, "label": "Porn"},
        {"kind": "confirmed", "segment_id": FRAME, "label": "Porn"},  # a frame's result id
        {"kind": "confirmed", "segment_id": SEGMENT, "label": "Abuse"},
        {"kind": "missed", "incident_id": "inc-1"},
    ]
    stored = []
    for body in given:
        status, entry = await call(api, "POST", "/v1/feedback", body)
        assert status == 201, entry
        stored.append(entry)
    assert [e["target_type"] for e in stored] == [
        "frame_id",
        "frame_id",
        "segment_id",
        "incident_id",
    ]

    status, seen = await call(api, "GET", "/v1/feedback")
    assert status == 200
    assert seen["frames"] == {"confirmed": {"Porn": 1}, "false_positive": {"Porn": 1}, "missed": {}}
    assert seen["audio"] == {"confirmed": {"Abuse": 1}, "false_positive": {}, "missed": {"": 1}}
    assert seen["counts"] == {
        "confirmed": {"Porn": 1, "Abuse": 1},
        "false_positive": {"Porn": 1},
        "missed": {"": 1},
    }
    properties = CONSOLE_SCHEMAS["FeedbackSummary"]["properties"]
    assert {"counts", "frames", "audio", "entries"} <= set(properties)


async def test_a_frame_id_must_be_given_alone_and_not_empty(api: str) -> None:
    both = {"kind": "confirmed", "frame_id": FRAME, "segment_id": SEGMENT}
    assert (await call(api, "POST", "/v1/feedback", both))[0] == 400
    empty = {"kind": "confirmed", "frame_id": ""}
    status, body = await call(api, "POST", "/v1/feedback", empty)
    assert status == 400
    assert "frame_id" in body["error"]["message"]
