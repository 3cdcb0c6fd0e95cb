"""``GET /v1/usage`` (JSON and CSV, from/to) and the search side of ``GET /v1/results``
(newest first, cursor pages, the incident a hit belongs to), served for real on loopback
over a real database filled through ``Outcomes`` as the daemon fills it: SQLite, and for the
tests that read or write the stores (``ON_BOTH``) fleet mode's PostgreSQL too."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from streamguard.api.console import ConsoleSetup
from streamguard.api.openapi import OPENAPI
from streamguard.api.routes import build_api
from streamguard.config.policy import ProfileConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.segment import Segment
from streamguard.core.serving import start_site
from streamguard.core.verdict import Outcome, Verdict
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.api.test_incidents_api import TOKEN, VIEWER, Rooms, conforms
from tests.support.backends import ON_BOTH, Backend, open_backend

PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}
DAY = timedelta(days=1)


def heard(seg: Segment, seconds: float, days_later: int = 0) -> Segment:
    """``seg`` lasting ``seconds``, ``days_later`` days after it really started."""
    start = seg.started_at + days_later * DAY
    return replace(
        seg,
        samples=np.zeros(int(SAMPLE_RATE * seconds), dtype=np.int16),
        started_at=start,
        ended_at=start + timedelta(seconds=seconds),
    )


def judged(seg: Segment, outcome: Outcome, text: str = "") -> Verdict:
    return Verdict(seg.id, outcome, engine="fake", engine_version="1", text=text)


@dataclass
class Served:
    base: str
    http: aiohttp.ClientSession
    segment_ids: list[str]

    async def get(self, path: str, token: str = TOKEN) -> tuple[int, Any, str]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.get(self.base + path, headers=headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json(), response.content_type
            return response.status, await response.text(), response.content_type


@pytest.fixture
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request, tmp_path) as opened:
        yield opened


@pytest.fixture
async def served(stores: Backend, tmp_path: Path) -> AsyncIterator[Served]:
    """Day 1 (2026-11-22): 15 s abusive ("idiot", an incident), 30 s clean, 15 s silent;
    day 2: 60 s clean and 15 s the engine skipped (overloaded)."""
    room = stream("s1", "room-1")
    segs = [heard(segment("s1", n), s, d) for n, s, d in ((0, 15, 0), (1, 30, 0), (2, 15, 0))]
    segs += [heard(segment("s1", 3), 60, 1), heard(segment("s1", 4), 15, 1)]
    verdicts = [
        risky(segs[0], text="shut up you idiot"),
        judged(segs[1], Outcome.MODERATED, "hello idiot fans of the map"),
        judged(segs[2], Outcome.NO_SPEECH),
        judged(segs[3], Outcome.MODERATED, "the new map looks great"),
        judged(segs[4], Outcome.SKIPPED_OVERLOADED),
    ]
    await stores.lease("s1")
    results, history = stores.results(), stores.incidents()
    sink = RecordingSink()
    async with Alerting(PROFILES, sink, instance_id="t", db=stores.db, history=history) as alerting:
        outcomes = Outcomes(PROFILES, alerting, results)
        for seg, verdict in zip(segs, verdicts, strict=True):
            await outcomes.handle(room, seg, verdict, None)
        app = build_api(
            streams=Rooms(room),
            results=results,
            feedback=stores.feedback(),
            registry=CollectorRegistry(),
            readiness={},
            token=TOKEN,
            console=ConsoleSetup(history, tmp_path / "ev", viewer_token=VIEWER),
        )
        runner, port = await start_site(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                yield Served(f"http://127.0.0.1:{port}", http, [s.id for s in segs])
        finally:
            await runner.cleanup()


@ON_BOTH
async def test_usage_per_day_and_label(served: Served) -> None:
    status, report, _ = await served.get("/v1/usage", token=VIEWER)
    assert status == 200
    conforms(report, "UsageReport")
    assert (report["from"], report["to"]) == (None, None)
    days = {d["day"]: d for d in report["days"]}
    assert list(days) == ["2026-11-22", "2026-11-23"]
    first, second = days.values()
    assert (first["segments"], first["minutes_ingested"]) == (3, 1.0)
    assert (first["minutes_moderated"], first["minutes_skipped_silent"]) == (0.75, 0.25)
    assert (second["minutes_moderated"], second["minutes_unjudged"]) == (1.0, 0.25)
    labels = {row["label"]: row for row in report["labels"]}
    assert labels["Abuse"]["minutes_moderated"] == 0.25
    assert labels["Normal"]["minutes_ingested"] == 2.0
    assert [(r["day"], r["label"]) for r in report["usage"]] == [
        ("2026-11-22", "Abuse"),
        ("2026-11-22", "Normal"),
        ("2026-11-23", "Normal"),
    ]

    _, only, _ = await served.get("/v1/usage?from=2026-11-23&to=2026-11-23")
    assert (only["from"], only["to"]) == ("2026-11-23", "2026-11-23")
    assert [d["day"] for d in only["days"]] == ["2026-11-23"]
    _, before, _ = await served.get("/v1/usage?to=2026-11-22")
    assert [d["day"] for d in before["days"]] == ["2026-11-22"]
    _, none, _ = await served.get("/v1/usage?from=2026-12-01")
    assert none["usage"] == none["days"] == none["labels"] == []
    _, ends, _ = await served.get("/v1/usage?from=0001-01-01&to=9999-12-31")  # no overflow
    assert ends["days"] == report["days"]


@ON_BOTH
async def test_usage_as_csv(served: Served) -> None:
    status, text, content_type = await served.get("/v1/usage?format=csv&from=2026-11-22")
    assert (status, content_type) == (200, "text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["day"], r["label"], r["segments"]) for r in rows] == [
        ("2026-11-22", "Abuse", "1"),
        ("2026-11-22", "Normal", "2"),
        ("2026-11-23", "Normal", "2"),
    ]
    assert rows[1]["minutes_ingested"] == "0.75"
    assert rows[2]["minutes_unjudged"] == "0.25"
    assert text.splitlines()[0].split(",") == [
        "day",
        "label",
        "segments",
        "minutes_ingested",
        "minutes_moderated",
        "minutes_skipped_silent",
        "minutes_unjudged",
        "frames",
        "frames_judged",
    ]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("from=yesterday", "from"),
        ("to=2026-11-22T00:00:00Z", "to"),
        ("from=2026-11-23&to=2026-11-22", "before"),
        ("format=xml", "format"),
        ("from=2026-02-30", "from"),
    ],
)
async def test_usage_refuses_a_bad_query(served: Served, query: str, names: str) -> None:
    status, body, _ = await served.get(f"/v1/usage?{query}")
    assert (status, body["error"]["code"]) == (400, "bad_query")
    assert names in body["error"]["message"]


async def test_a_nul_byte_in_a_query_is_refused_naming_the_parameter(served: Served) -> None:
    status, body, _ = await served.get("/v1/results?q=%00")
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert "'q'" in body["error"]["message"]


@ON_BOTH
async def test_search_newest_first_in_pages_with_the_incident_of_each_hit(
    served: Served,
) -> None:
    abusive, clean = served.segment_ids[:2]
    status, found, _ = await served.get("/v1/results?q=idiot&order=newest&limit=1")
    assert status == 200
    (hit,) = found["results"]
    for result in found["results"]:
        conforms(result, "Result")
    assert (hit["segment"]["segment_id"], hit["incident_id"]) == (clean, None)
    assert found["next_cursor"] == hit["cursor"]
    cursor = found["next_cursor"]
    _, page, _ = await served.get(f"/v1/results?q=idiot&order=newest&limit=1&cursor={cursor}")
    (hit,) = page["results"]
    assert hit["segment"]["segment_id"] == abusive
    assert hit["incident_id"] is not None
    _, incident, _ = await served.get(f"/v1/incidents/{hit['incident_id']}")
    assert incident["segments"][0]["segment"]["id"] == abusive
    cursor = page["next_cursor"]
    _, last, _ = await served.get(f"/v1/results?q=idiot&order=newest&limit=1&cursor={cursor}")
    assert (last["results"], last["next_cursor"]) == ([], None)
    # Oldest first stays the default; an empty q= is no filter.
    _, every, _ = await served.get("/v1/results?q=")
    assert [r["segment"]["segment_id"] for r in every["results"]] == served.segment_ids
    # Pages oldest first too, the cursor pasted as given (its "+" not percent-encoded).
    paged: list[str] = []
    path = "/v1/results?limit=2"
    while path:
        _, page, _ = await served.get(path)
        paged += [r["segment"]["segment_id"] for r in page["results"]]
        cursor = page["next_cursor"]
        path = f"/v1/results?limit=2&cursor={cursor}" if cursor else ""
    assert paged == served.segment_ids
    for bad in ("order=sideways", "cursor=nonsense", "cursor=aaa|x", "cursor=|x"):
        status, body, _ = await served.get(f"/v1/results?{bad}")
        assert (status, body["error"]["code"]) == (400, "bad_query")


async def test_the_search_try_and_usage_pages_load_their_own_script(served: Served) -> None:
    for page in ("search", "try", "usage"):
        async with served.http.get(f"{served.base}/console/{page}") as response:
            assert response.status == 200, page
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            html = await response.text()
        assert f'<script src="/console/static/{page}.js" defer></script>' in html
        assert f'<a href="/console/{page}" aria-current=page>' in html
        assert "http://" not in html
        assert "https://" not in html
        async with served.http.get(f"{served.base}/console/static/{page}.js") as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
            script = await response.text()
        assert f"PAGES.{page} =" in script
        assert "http://" not in script.replace("http://www.w3.org/2000/svg", "")


@ON_BOTH
async def test_feedback_stored_answers_its_entry_as_the_openapi_document_says(
    served: Served,
) -> None:
    _, found, _ = await served.get("/v1/incidents")
    body = {"kind": "missed", "incident_id": found["incidents"][0]["id"], "note": "late"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with served.http.post(served.base + "/v1/feedback", json=body, headers=headers) as r:
        assert r.status == 201
        conforms(await r.json(), "FeedbackEntry")


def test_every_openapi_schema_is_valid_and_every_reference_resolves() -> None:
    schemas = OPENAPI["components"]["schemas"]
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    named = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(OPENAPI)))
    assert named <= set(schemas)
    assert {"UsageReport", "TryReport", "TryUrl", "Result"} <= named
