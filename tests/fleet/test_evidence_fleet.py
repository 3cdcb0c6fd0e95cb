"""Evidence in fleet mode, on a real PostgreSQL and real HTTP: a clip kept by instance A is
served by instance B (which has no file of it), whole and by Range; a signed URL handed out by
A plays on B; the shared clips are pruned like the evidence directory."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from streamguard.api.console import ConsoleSetup
from streamguard.api.evidence import CHUNK_BYTES
from streamguard.api.routes import build_api
from streamguard.config.policy import ProfileConfig
from streamguard.core.serving import start_site
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import EvidenceStore
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.evidence import (
    ClipHead,
    PgEvidenceClips,
    SharedClip,
    evidence_url_key,
)
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


async def api(
    stack: AsyncExitStack,
    db: PgDatabase,
    tmp: Path,
    name: str,
    clips: PgEvidenceClips | None = None,
) -> str:
    """Instance ``name``'s API on the shared history, clips and URL key; its base URL."""
    local = await stack.enter_async_context(Database(tmp / f"{name}.db"))
    clips = clips or PgEvidenceClips(db, keep_seconds=3600, max_bytes=10**9)
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


async def alerted(stack: AsyncExitStack, db: PgDatabase, tmp_path: Path) -> tuple[str, str]:
    """Instance A alerts on a segment of ``s1`` and keeps its clip (``tmp_path/clip.wav``),
    shared: the segment's and the incident's ids."""
    clip = tmp_path / "clip.wav"
    write_wav(clip)
    shared = PgEvidenceClips(db, keep_seconds=3600, max_bytes=10**9)
    store = EvidenceStore(
        tmp_path / "a" / "evidence", keep_seconds=3600, max_bytes=10**9, shared=shared
    )
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
    return seg.id, alert.payload["incident"]["id"]


async def test_a_clip_kept_on_a_is_served_by_b(db: PgDatabase, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        write_wav(tmp_path / "original.wav")
        original = (tmp_path / "original.wav").read_bytes()
        segment_id, incident_id = await alerted(stack, db, tmp_path)
        a_base = await api(stack, db, tmp_path, "a")
        b_base = await api(stack, db, tmp_path, "b")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        auth = {"Authorization": f"Bearer {TOKEN}"}

        async def get(url: str, **headers: str) -> tuple[int, bytes, Any]:
            async with http.get(url, headers=headers) as response:
                return response.status, await response.read(), response.headers

        status, whole, headers = await get(f"{b_base}/v1/evidence/{segment_id}", **auth)
        assert (status, whole) == (200, original)
        assert headers["Content-Type"] == "audio/wav"
        assert headers["Accept-Ranges"] == "bytes"
        status, part, headers = await get(
            f"{b_base}/v1/evidence/{segment_id}", Range="bytes=100-199", **auth
        )
        assert (status, part) == (206, original[100:200])
        assert headers["Content-Range"] == f"bytes 100-199/{len(original)}"
        status, tail, _ = await get(f"{b_base}/v1/evidence/{segment_id}", Range="bytes=-10", **auth)
        assert (status, tail) == (206, original[-10:])
        status, _, headers = await get(
            f"{b_base}/v1/evidence/{segment_id}", Range=f"bytes={len(original)}-", **auth
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
        status, _, _ = await get(f"{b_base}/v1/evidence/{segment_id}", **auth)
        assert status == 410


class _Counting(PgEvidenceClips):
    """The shared clips (our seam), counting the bytes each read brings from the database."""

    reads: list[int]

    async def read(self, head: ClipHead, start: int, length: int) -> bytes | None:
        part = await super().read(head, start, length)
        self.reads.append(-1 if part is None else len(part))
        return part


async def test_a_range_or_head_of_a_shared_clip_reads_only_what_it_answers(
    db: PgDatabase, tmp_path: Path
) -> None:
    """A shared clip larger than a read part (``CHUNK_BYTES``): a Range request reads its
    range alone from the database, a HEAD no body, a whole GET the clip by parts."""
    async with AsyncExitStack() as stack:
        segment_id, _ = await alerted(stack, db, tmp_path)
        clips = _Counting(db, keep_seconds=3600, max_bytes=10**9)
        clips.reads = []
        big = random.Random(7).randbytes(CHUNK_BYTES * 5 // 2)
        digest = hashlib.sha256(big).hexdigest()
        await clips.put("s1", SharedClip(segment_id, f"{segment_id}.wav", digest, big))
        b_base = await api(stack, db, tmp_path, "b", clips)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        url = f"{b_base}/v1/evidence/{segment_id}"
        auth = {"Authorization": f"Bearer {TOKEN}"}

        async with http.head(url, headers=auth) as response:
            assert (response.status, response.headers["Content-Length"]) == (200, f"{len(big)}")
            assert response.headers["ETag"] == f'"{digest}"'
        async with http.head(url, headers={**auth, "Range": "bytes=10-19"}) as response:
            assert (response.status, response.headers["Content-Length"]) == (206, "10")
        assert clips.reads == []
        async with http.get(url, headers={**auth, "Range": "bytes=1500000-1500099"}) as response:
            assert (response.status, await response.read()) == (206, big[1500000:1500100])
        assert clips.reads == [100]
        clips.reads.clear()
        async with http.get(url, headers=auth) as response:
            assert (response.status, await response.read()) == (200, big)
        assert clips.reads == [CHUNK_BYTES, CHUNK_BYTES, len(big) - 2 * CHUNK_BYTES]


async def body(clips: PgEvidenceClips, segment_id: str) -> bytes | None:
    head = await clips.head(segment_id)
    return None if head is None else await clips.read(head, 0, head.size)


async def test_shared_clips_are_pruned_by_age_and_size(db: PgDatabase) -> None:
    clips = PgEvidenceClips(db, keep_seconds=3600, max_bytes=250, prune_every=0)
    for n in range(3):
        await clips.put("s1", SharedClip(f"seg-{n}", f"seg-{n}.jpg", "x", bytes(100)))
        await asyncio.sleep(0.01)  # distinct kept_at
    assert await clips.head("seg-0") is None  # the oldest went: 300 bytes > 250
    assert await body(clips, "seg-2") == bytes(100)
    assert await clips.head("seg-1") is not None
    big = SharedClip("seg-big", "seg-big.wav", "x", bytes(400))
    # Over the bound alone: every older clip goes, never the clip just kept.
    assert await clips.put("s1", big) == 2
    assert await clips.head("seg-big") is not None
    await db.run(
        lambda conn: conn.execute("UPDATE evidence_clips SET kept_at = now() - interval '2 hours'")
    )
    assert await PgEvidenceClips(db, keep_seconds=3600, max_bytes=10**9).prune() >= 1
    assert await clips.head("seg-big") is None


async def test_retention_runs_with_a_put_at_most_once_a_minute(db: PgDatabase) -> None:
    """Retention ranks the whole table: the first put runs it, the next ones within
    ``prune_every`` do not (the periodic ``prune`` or a later put does)."""
    clips = PgEvidenceClips(db, keep_seconds=3600, max_bytes=250)
    assert clips.prune_every == 60
    for n in range(4):
        assert await clips.put("s1", SharedClip(f"seg-{n}", f"seg-{n}.jpg", "x", bytes(100))) == 0
        await asyncio.sleep(0.01)  # distinct kept_at
    assert await clips.head("seg-0") is not None  # over the bound, till retention runs
    assert await clips.prune() == 2
    assert [await clips.head(f"seg-{n}") is None for n in range(4)] == [True, True, False, False]
