"""Evidence in fleet mode, on a real PostgreSQL and real HTTP: a clip kept by instance A is
served by instance B (which has no file of it), whole and by Range; a signed URL handed out by
A plays on B; the shared clips are pruned like the evidence directory."""

from __future__ import annotations

import asyncio
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
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.evidence import PgEvidenceClips, SharedClip, evidence_url_key
from streamguard.state.postgres.feedback import PgFeedback
from streamguard.state.postgres.incidents import PgIncidentHistory
from streamguard.state.results import Results
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.api.test_incidents_api import write_wav
from tests.fleet.test_streams_api import Running

TOKEN = "operator-token-0123"
PROFILES = {"default": ProfileConfig(cooldown_seconds=3600, incident_quiet_seconds=3600)}


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def api(stack: AsyncExitStack, db: PgDatabase, tmp: Path, name: str) -> str:
    """Instance ``name``'s API on the shared history, clips and URL key; its base URL."""
    local = await stack.enter_async_context(Database(tmp / f"{name}.db"))
    clips = PgEvidenceClips(db, keep_seconds=3600, max_bytes=10**9)
    app = build_api(
        streams=Running(list),
        results=Results(local),
        feedback=PgFeedback(db),
        registry=CollectorRegistry(),
        readiness={},
        token=TOKEN,
        console=ConsoleSetup(
            PgIncidentHistory(db),
            tmp / name / "evidence",
            shared_clips=clips,
            evidence_url_key=await evidence_url_key(db),
        ),
    )
    runner, port = await start_site(app, "127.0.0.1", 0)
    stack.push_async_callback(runner.cleanup)
    return f"http://127.0.0.1:{port}"


async def test_a_clip_kept_on_a_is_served_by_b(db: PgDatabase, tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    write_wav(clip)
    original = clip.read_bytes()
    shared = PgEvidenceClips(db, keep_seconds=3600, max_bytes=10**9)
    store = EvidenceStore(
        tmp_path / "a" / "evidence", keep_seconds=3600, max_bytes=10**9, shared=shared
    )
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(Database(tmp_path / "a-alerts.db"))
        alerting = await stack.enter_async_context(
            Alerting(
                PROFILES,
                RecordingSink(),
                instance_id="a",
                evidence=store,
                db=sqlite,
                history=PgIncidentHistory(db),
            )
        )
        seg = segment("s1", 0)
        outcomes = Outcomes(PROFILES, alerting, Results(sqlite))
        (alert,) = await outcomes.handle(stream("s1", "room-1"), seg, risky(seg), clip)
        incident_id = alert.payload["incident"]["id"]
        a_base = await api(stack, db, tmp_path, "a")
        b_base = await api(stack, db, tmp_path, "b")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        auth = {"Authorization": f"Bearer {TOKEN}"}

        async def get(url: str, **headers: str) -> tuple[int, bytes, Any]:
            async with http.get(url, headers=headers) as response:
                return response.status, await response.read(), response.headers

        status, whole, headers = await get(f"{b_base}/v1/evidence/{seg.id}", **auth)
        assert (status, whole) == (200, original)
        assert headers["Content-Type"] == "audio/wav"
        assert headers["Accept-Ranges"] == "bytes"
        status, part, headers = await get(
            f"{b_base}/v1/evidence/{seg.id}", Range="bytes=100-199", **auth
        )
        assert (status, part) == (206, original[100:200])
        assert headers["Content-Range"] == f"bytes 100-199/{len(original)}"
        status, tail, _ = await get(f"{b_base}/v1/evidence/{seg.id}", Range="bytes=-10", **auth)
        assert (status, tail) == (206, original[-10:])
        status, _, headers = await get(
            f"{b_base}/v1/evidence/{seg.id}", Range=f"bytes={len(original)}-", **auth
        )
        assert (status, headers["Content-Range"]) == (416, f"bytes */{len(original)}")

        # A signed URL from A's incident detail plays on B, without a token.
        async with http.get(f"{a_base}/v1/incidents/{incident_id}", headers=auth) as response:
            detail = await response.json()
        signed = detail["segments"][0]["evidence"]["url"]
        status, played, _ = await get(f"{b_base}{signed}")
        assert (status, played) == (200, original)
        status, _, _ = await get(f"{b_base}{signed.replace('sig=', 'sig=0')}")
        assert status == 403

        # Gone from the database too: 410, as when retention deleted the file.
        await db.run(lambda conn: conn.execute("DELETE FROM evidence_clips"))
        status, _, _ = await get(f"{b_base}/v1/evidence/{seg.id}", **auth)
        assert status == 410


async def test_shared_clips_are_pruned_by_age_and_size(db: PgDatabase) -> None:
    clips = PgEvidenceClips(db, keep_seconds=3600, max_bytes=250)
    for n in range(3):
        await clips.put("s1", SharedClip(f"seg-{n}", f"seg-{n}.jpg", "x", bytes(100)))
        await asyncio.sleep(0.01)  # distinct kept_at
    assert await clips.get("seg-0") is None  # the oldest went: 300 bytes > 250
    kept = await clips.get("seg-2")
    assert kept is not None
    assert kept.body == bytes(100)
    assert await clips.get("seg-1") is not None
    big = SharedClip("seg-big", "seg-big.wav", "x", bytes(400))
    # Over the bound alone: every older clip goes, never the clip just kept.
    assert await clips.put("s1", big) == 2
    assert await clips.get("seg-big") is not None
    await db.run(
        lambda conn: conn.execute("UPDATE evidence_clips SET kept_at = now() - interval '2 hours'")
    )
    assert await PgEvidenceClips(db, keep_seconds=3600, max_bytes=10**9).prune() >= 1
    assert await clips.get("seg-big") is None
