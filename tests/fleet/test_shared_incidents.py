"""The incident history in fleet mode, on a real PostgreSQL: incidents raised by two
instances are listed, filtered and read (segments, verdicts, alerts, feedback) by either
instance's ``/v1/incidents``, as one machine's are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from streamguard.api.console import ConsoleSetup
from streamguard.api.routes import build_api
from streamguard.config.policy import ProfileConfig
from streamguard.core.serving import start_site
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.feedback import PgFeedback
from streamguard.state.postgres.incidents import PgIncidentHistory
from streamguard.state.results import Results
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.fleet.test_streams_api import Running, conforms

TOKEN = "operator-token-0123"
PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def raise_incident(db: PgDatabase, local: Path, instance: str, stream_id: str) -> str:
    """Two risky segments of ``stream_id`` judged on ``instance``; the incident's id."""
    room = stream(stream_id, f"room-{stream_id}")
    async with (
        Database(local) as sqlite,
        Alerting(
            PROFILES,
            RecordingSink(),
            instance_id=instance,
            db=sqlite,
            history=PgIncidentHistory(db),
        ) as alerting,
    ):
        outcomes = Outcomes(PROFILES, alerting, Results(sqlite))
        alerts = []
        for seq in range(2):
            seg = segment(stream_id, seq)
            alerts += await outcomes.handle(room, seg, risky(seg, text=f"idiot {seq}"), None)
    return str(alerts[0].payload["incident"]["id"])


async def test_either_instance_answers_for_the_incidents_of_both(
    db: PgDatabase, tmp_path: Path
) -> None:
    on_a = await raise_incident(db, tmp_path / "a.db", "a", "s1")
    on_b = await raise_incident(db, tmp_path / "b.db", "b", "s2")
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(Database(tmp_path / "c.db"))
        app = build_api(
            streams=Running(list),
            results=Results(sqlite),
            feedback=PgFeedback(db),
            registry=CollectorRegistry(),
            readiness={},
            token=TOKEN,
            console=ConsoleSetup(PgIncidentHistory(db), tmp_path / "evidence"),
        )
        runner, port = await start_site(app, "127.0.0.1", 0)
        stack.push_async_callback(runner.cleanup)
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def get(path: str) -> tuple[int, Any]:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(f"http://127.0.0.1:{port}{path}", headers=auth) as response:
                return response.status, await response.json()

        status, body = await get("/v1/incidents")
        assert status == 200
        assert sorted(i["id"] for i in body["incidents"]) == sorted([on_a, on_b])
        for item in body["incidents"]:
            conforms(item, "Incident")
            assert (item["state"], item["segments"]) == ("ended", 2)  # ended on close
        status, body = await get("/v1/incidents?room=room-s1&min_risk=medium&state=ended")
        assert [i["id"] for i in body["incidents"]] == [on_a]
        status, body = await get("/v1/incidents?state=open")
        assert body["incidents"] == []

        await PgFeedback(db).record({"kind": "confirmed", "incident_id": on_a})
        status, detail = await get(f"/v1/incidents/{on_a}")
        assert status == 200
        conforms(detail, "IncidentDetail")
        assert [s["verdict"]["text"] for s in detail["segments"]] == ["idiot 0", "idiot 1"]
        assert detail["alerts"][0]["incident"]["event"] == "new"
        assert detail["incident"]["ended_at"] is not None
        assert [f["kind"] for f in detail["feedback"]] == ["confirmed"]
        status, _ = await get("/v1/incidents/inc-nope")
        assert status == 404
