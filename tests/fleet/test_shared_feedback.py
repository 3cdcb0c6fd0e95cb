"""Feedback in fleet mode, on a real PostgreSQL: given through one instance's API, counted
and listed by another's; refused with the field named when it is not usable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from streamguard.api.routes import build_api
from streamguard.core.serving import start_site
from streamguard.state.db import Database
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.feedback import PgFeedback
from streamguard.state.results import Results
from tests.fleet.test_streams_api import Running

TOKEN = "operator-token-0123"


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def instance_api(stack: AsyncExitStack, db: PgDatabase, local: Path) -> str:
    """One instance's control API over the shared feedback; its base URL."""
    sqlite = await stack.enter_async_context(Database(local))
    app = build_api(
        streams=Running(list),
        results=Results(sqlite),
        feedback=PgFeedback(db),
        registry=CollectorRegistry(),
        readiness={},
        token=TOKEN,
    )
    runner, port = await start_site(app, "127.0.0.1", 0)
    stack.push_async_callback(runner.cleanup)
    return f"http://127.0.0.1:{port}"


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with http.request(method, url, json=body, headers=auth) as response:
        return response.status, await response.json()


async def test_feedback_given_on_one_instance_is_counted_on_another(
    db: PgDatabase, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        a = await instance_api(stack, db, tmp_path / "a.db")
        b = await instance_api(stack, db, tmp_path / "b.db")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        first = {"kind": "false_positive", "alert_id": "al-1", "label": "Abuse", "note": "joke"}
        status, given = await call(http, "POST", f"{a}/v1/feedback", first)
        assert status == 201
        status, _ = await call(
            http, "POST", f"{b}/v1/feedback", {"kind": "missed", "segment_id": "s-9"}
        )
        assert status == 201

        status, seen = await call(http, "GET", f"{b}/v1/feedback")
        assert status == 200
        assert seen["counts"] == {
            "confirmed": {},
            "false_positive": {"Abuse": 1},
            "missed": {"": 1},
        }
        assert [e["target_id"] for e in seen["entries"]] == ["s-9", "al-1"]  # newest first
        assert seen["entries"][1] == given

        status, refused = await call(
            http, "POST", f"{a}/v1/feedback", {"kind": "nope", "alert_id": "x"}
        )
        assert status == 400
        assert "kind" in refused["error"]["message"]
    assert await PgFeedback(db).entries(target_id="al-1") == [given]
