"""The API behind the console, served for real on loopback: incidents, evidence with Range
and signed URLs, rooms, the viewer token, result search, feedback entries — and every answer
checked against the OpenAPI document; over the stores of both backends (``backend``)."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from streamguard.api.auth import EvidenceUrls
from streamguard.api.console import ConsoleSetup
from streamguard.api.openapi import OPENAPI
from streamguard.api.routes import build_api
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.serving import start_site
from streamguard.core.status import StreamState
from streamguard.core.verdict import KeywordHit
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.incidents import IncidentStore
from streamguard.streams.report import StreamReport, StreamTally
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.support.backends import Backend

TOKEN = "operator-token-0123"
VIEWER = "viewer-token-4567"
PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}
TEXT = "shut up you idiot"
IDIOT = KeywordHit(
    keyword="idiot",
    library_id="lib-1",
    library_name="insults",
    label="Abuse",
    sub_label="Insult",
    score=95,
    text_start=TEXT.index("idiot"),
    text_end=TEXT.index("idiot") + 5,
)


class Rooms:
    """The streams seam of the API (``StreamControl``), with one stream reported online."""

    def __init__(self, config: StreamConfig) -> None:
        self.config = config

    def reports(self) -> list[StreamReport]:
        return [StreamReport(self.config, StreamState.ONLINE, None, StreamTally())]

    def report(self, stream_id: str) -> StreamReport | None:
        return self.reports()[0] if stream_id == self.config.id else None

    def config_of(self, stream_id: str) -> StreamConfig | None:
        return self.config if stream_id == self.config.id else None

    async def attach(self, stream: StreamConfig) -> None:
        raise AssertionError("not in these tests")

    async def change(self, stream: StreamConfig) -> None:
        raise AssertionError("not in these tests")

    async def detach(self, stream_id: str) -> bool:
        return stream_id == self.config.id


@dataclass
class Served:
    base: str
    http: aiohttp.ClientSession
    history: IncidentStore
    evidence_dir: Path
    segment_ids: list[str]

    async def get(self, path: str, token: str | None = TOKEN, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        async with self.http.get(self.base + path, headers=headers, **kw) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()


def write_wav(path: Path, seconds: float = 1.0) -> None:
    t = np.arange(int(16_000 * seconds)) / 16_000
    samples = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(samples.tobytes())


@pytest.fixture
async def served(backend: Backend, tmp_path: Path) -> AsyncIterator[Served]:
    """The API over either backend's results, incidents and feedback (``backend``)."""
    clip = tmp_path / "clip.wav"
    write_wav(clip)
    evidence_dir = tmp_path / "evidence"
    store = EvidenceStore(evidence_dir, keep_seconds=3600, max_bytes=10**9)
    room = stream("s1", "room-1")
    await backend.lease("s1")
    history = backend.incidents()
    results = backend.results()
    alerting = Alerting(
        PROFILES,
        RecordingSink(),
        instance_id="t",
        evidence=store,
        db=backend.db,
        history=history,
    )
    async with alerting:
        outcomes = Outcomes(PROFILES, alerting, results)
        first, second = segment("s1", 0), segment("s1", 1)
        judged = risky(first, text=TEXT, keywords=(IDIOT,))
        await outcomes.handle(room, first, judged, clip)
        await outcomes.handle(room, second, risky(second, text="go away"), None)
        app = build_api(
            streams=Rooms(room),
            results=results,
            feedback=backend.feedback(),
            registry=CollectorRegistry(),
            readiness={},
            token=TOKEN,
            console=ConsoleSetup(history, evidence_dir, viewer_token=VIEWER),
        )
        runner, port = await start_site(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                yield Served(
                    f"http://127.0.0.1:{port}",
                    http,
                    history,
                    evidence_dir,
                    [first.id, second.id],
                )
        finally:
            await runner.cleanup()


def conforms(body: Any, schema_name: str) -> None:
    """``body`` is valid against ``#/components/schemas/<schema_name>`` of the OpenAPI doc."""
    resource = Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:api", resource)
    schema = {"$ref": f"urn:api#/components/schemas/{schema_name}"}
    Draft202012Validator(schema, registry=registry).validate(body)


async def test_incidents_list_and_detail(served: Served) -> None:
    status, body = await served.get("/v1/incidents")
    assert status == 200
    (incident,) = body["incidents"]
    for item in body["incidents"]:
        conforms(item, "Incident")
    assert (incident["room_id"], incident["label"], incident["state"]) == (
        "room-1",
        "Abuse",
        "open",
    )
    assert incident["segments"] == 2
    assert (await served.get("/v1/incidents?room=room-2"))[1] == {"incidents": []}
    assert len((await served.get("/v1/incidents?risk=high&state=open"))[1]["incidents"]) == 1
    assert (await served.get("/v1/incidents?state=ended"))[1] == {"incidents": []}
    status, problem = await served.get("/v1/incidents?risk=severe")
    assert (status, problem["error"]["code"]) == (400, "bad_query")
    status, problem = await served.get("/v1/incidents?since=yesterday")
    assert (status, problem["error"]["code"]) == (400, "bad_query")

    status, detail = await served.get(f"/v1/incidents/{incident['id']}")
    assert status == 200
    conforms(detail, "IncidentDetail")
    opening, following = detail["segments"]
    assert opening["verdict"]["text"] == TEXT
    assert opening["verdict"]["keywords"][0]["text_start"] == TEXT.index("idiot")
    assert opening["evidence"]["url"].startswith(f"/v1/evidence/{served.segment_ids[0]}?")
    assert following["evidence"] is None
    assert [a["incident"]["event"] for a in detail["alerts"]] == ["new"]
    assert detail["feedback"] == []
    status, problem = await served.get("/v1/incidents/inc-nope")
    assert (status, problem["error"]["code"]) == (404, "no_such_incident")


async def test_evidence_is_served_with_range_and_signed_urls(served: Served) -> None:
    first, second = served.segment_ids
    clip = next(served.evidence_dir.glob(f"*/{first}.wav")).read_bytes()
    status, whole = await served.get(f"/v1/evidence/{first}")
    assert (status, whole) == (200, clip)
    async with served.http.get(
        f"{served.base}/v1/evidence/{first}",
        headers={"Authorization": f"Bearer {TOKEN}", "Range": "bytes=4-11"},
    ) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 4-11/{len(clip)}"
        assert response.headers["Content-Type"] == "audio/wav"
        assert await response.read() == clip[4:12]
    status, problem = await served.get(f"/v1/evidence/{first}", token=None)
    assert (status, problem["error"]["code"]) == (401, "unauthorized")

    # The signed URL the incident hands out plays without a token, Range included.
    _, (incident,) = (await served.get("/v1/incidents"))[1].popitem()
    _, detail = await served.get(f"/v1/incidents/{incident['id']}")
    url = detail["segments"][0]["evidence"]["url"]
    status, signed = await served.get(url, token=None, headers={"Range": "bytes=0-3"})
    assert (status, signed) == (206, b"RIFF")
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    status, problem = await served.get(forged, token=None)
    assert (status, problem["error"]["code"]) == (403, "bad_signature")
    # A signature is for one segment only.
    other = url.replace(first, second)
    assert (await served.get(other, token=None))[0] == 403
    status, problem = await served.get(f"/v1/evidence/{second}")
    assert (status, problem["error"]["code"]) == (404, "no_evidence")
    # Deleted by retention since: gone.
    next(served.evidence_dir.glob(f"*/{first}.wav")).unlink()
    status, problem = await served.get(url, token=None)
    assert (status, problem["error"]["code"]) == (410, "evidence_gone")


def test_signed_urls_expire() -> None:
    now = [1000.0]
    urls = EvidenceUrls(ttl=60, clock=lambda: now[0])
    query = urls.url("seg/1").split("?", 1)[1]
    params = dict(pair.split("=") for pair in query.split("&"))
    assert urls.url("seg/1").startswith("/v1/evidence/seg%2F1?")
    assert urls.valid("seg/1", params["expires"], params["sig"])
    assert not urls.valid("seg/2", params["expires"], params["sig"])
    assert not urls.valid("seg/1", str(int(params["expires"]) + 1), params["sig"])
    assert not urls.valid("seg/1", "soon", params["sig"])
    # Hostile values are refused, never an error: a digit that is not ASCII, too many digits,
    # a signature that is not ASCII.
    assert not urls.valid("seg/1", "²", params["sig"])
    assert not urls.valid("seg/1", "9" * 5000, params["sig"])
    assert not urls.valid("seg/1", params["expires"], "é" + params["sig"][1:])
    now[0] += 61
    assert not urls.valid("seg/1", params["expires"], params["sig"])


async def test_viewer_token_reads_and_changes_nothing(served: Served) -> None:
    assert await served.get("/v1/whoami", token=VIEWER) == (200, {"role": "viewer"})
    assert await served.get("/v1/whoami") == (200, {"role": "operator"})
    assert (await served.get("/v1/incidents", token=VIEWER))[0] == 200
    assert (await served.get("/v1/streams", token=VIEWER))[0] == 200
    headers = {"Authorization": f"Bearer {VIEWER}"}
    body = {"kind": "false_positive", "incident_id": "inc-1"}
    async with served.http.post(
        served.base + "/v1/feedback", json=body, headers=headers
    ) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "read_only"
    async with served.http.delete(served.base + "/v1/streams/s1", headers=headers) as response:
        assert response.status == 403
    assert (await served.get("/v1/whoami", token="wrong"))[0] == 401


async def test_rooms_feedback_entries_and_result_search(served: Served) -> None:
    status, body = await served.get("/v1/rooms")
    assert status == 200
    (room,) = body["rooms"]
    conforms(room, "Room")
    assert (room["id"], room["state"], room["open_incidents"]) == ("s1", "online", 1)
    assert room["last_result"]["segment"]["segment_id"] == served.segment_ids[1]
    status, incidents = await served.get("/v1/incidents")
    incident_id = incidents["incidents"][0]["id"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for kind in ("confirmed", "false_positive"):
        body = {"kind": kind, "incident_id": incident_id, "label": "Abuse"}
        async with served.http.post(
            served.base + "/v1/feedback", json=body, headers=headers
        ) as response:
            assert response.status == 201
    status, feedback = await served.get("/v1/feedback")
    conforms(feedback, "FeedbackSummary")
    assert feedback["counts"]["confirmed"] == {"Abuse": 1}
    assert [e["kind"] for e in feedback["entries"]] == ["false_positive", "confirmed"]
    _, detail = await served.get(f"/v1/incidents/{incident_id}")
    assert [e["kind"] for e in detail["feedback"]] == ["false_positive", "confirmed"]

    _, found = await served.get("/v1/results?q=idiot")
    assert [r["segment"]["segment_id"] for r in found["results"]] == served.segment_ids[:1]
    _, found = await served.get("/v1/results?q=abuse&room=room-1")
    assert len(found["results"]) == 2
    _, found = await served.get("/v1/results?q=abuse&room=room-2")
    assert found["results"] == []


async def test_console_pages_need_no_token_and_fetch_nothing_elsewhere(served: Served) -> None:
    for path in ("/console/", "/console/login", "/console/incidents", "/console/incidents/x<y"):
        async with served.http.get(served.base + path) as response:
            assert response.status == 200, path
            assert response.content_type == "text/html"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            page = await response.text()
            assert "http://" not in page
            assert "https://" not in page
            assert "x<y" not in page  # the id is escaped
    async with served.http.get(served.base + "/console", allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (302, "/console/")
    status, script = await served.get("/console/static/console.js", token=None)
    assert status == 200
    assert b"sessionStorage" in script
    assert b"localStorage" not in script
    assert (await served.get("/console/static/../routes.py", token=None))[0] == 404
    assert (await served.get("/console/static/nope.js", token=None))[0] == 404
