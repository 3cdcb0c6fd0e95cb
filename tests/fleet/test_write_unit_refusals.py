"""Units of work refused, on a real PostgreSQL: at a shutdown that hit its deadline (the
units still waiting for their batch are written before the leases go back; one refused
after its caller stopped waiting is said, not dropped silently), and for another reason
than a moved lease (a transcript with a NUL character: stored all the same; a write the
database refuses: the alert already out is not withdrawn, the segment recorded as failed).

As in ``test_write_units``, the batching window is long and the batch is written by
``flush`` (or the drain) once every unit joined it: nothing asserted depends on timing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from streamguard.core.verdict import Outcome
from streamguard.moderation.evidence import EvidenceStore
from streamguard.state.db import StateError
from streamguard.state.postgres.database import Connection, PgDatabase, StaleWrite
from streamguard.state.postgres.evidence import PgEvidenceClips
from streamguard.state.postgres.fleet import Fleet
from streamguard.state.postgres.results import PgResults
from streamguard.state.postgres.units import WriteBatches
from streamguard.state.results import ResultQuery
from streamguard.streams.fleet import FleetMember
from streamguard.testing.alerts import risky, segment, stream
from tests.fleet.test_shedding import Runner
from tests.fleet.test_write_units import LEASE, LONG, count, holding, instance


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def _waiting(batches: WriteBatches, n: int) -> None:
    async with asyncio.timeout(30):
        while batches.waiting < n:  # noqa: ASYNC110 - a count, no event to await
            await asyncio.sleep(0.01)


async def test_units_waiting_at_a_shutdown_deadline_are_written_before_the_release(
    db: PgDatabase, tmp_path: Path
) -> None:
    fleet = await holding(db, "a", ["s1"])
    async with AsyncExitStack() as stack:
        outcomes, batches, stale, _ = await instance(stack, db, tmp_path, fleet, window=LONG)
        member = FleetMember(fleet, Runner(), settle=batches.drain)
        seg = segment("s1", 0)
        task = asyncio.create_task(outcomes.handle(stream("s1"), seg, risky(seg), None))
        await _waiting(batches, 1)
        task.cancel()  # the shutdown deadline passed: ``Streams.cancel_all``
        await asyncio.gather(task, return_exceptions=True)
        await member.release_all()  # as ``Daemon._shutdown`` does next
        assert stale == []
        assert await count(db, "results") == 1
        assert await count(db, "alerts_outbox") == 1
        assert await count(db, "open_incidents") == 1


async def test_a_unit_refused_after_its_caller_left_is_logged_and_told(
    db: PgDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = await holding(db, "a", ["s1"])
    async with AsyncExitStack() as stack:
        outcomes, batches, stale, _ = await instance(stack, db, tmp_path, fleet, window=LONG)
        seg = segment("s1", 0)
        task = asyncio.create_task(outcomes.handle(stream("s1"), seg, risky(seg), None))
        await _waiting(batches, 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fleet.release(["s1"])  # the lease moved on before the batch was written
        with caplog.at_level(logging.ERROR, "streamguard.state.postgres.units"):
            await batches.flush()
        assert stale == ["s1"]
        assert any(
            "refused as stale" in r.getMessage() and "s1" in r.getMessage() for r in caplog.records
        )
        assert await count(db, "results") == 0


async def test_a_transcript_with_a_nul_character_is_stored_and_searchable(
    db: PgDatabase, tmp_path: Path
) -> None:
    fleet = await holding(db, "a", ["s1"])
    async with AsyncExitStack() as stack:
        outcomes, _, stale, alerting = await instance(stack, db, tmp_path, fleet, window=0)
        seg = segment("s1", 0)
        before = db.queries
        alerts = await outcomes.handle(
            stream("s1"), seg, risky(seg, text="you\x00 idiot\x00", reason="a\x00b"), None
        )
        assert db.queries - before == 1  # the unit whole, not written again write by write
        assert len(alerts) == 1
        assert stale == []
        assert len(alerting.incidents.open) == 1
        found = await PgResults(db, fleet.fence).query(ResultQuery(text="idiot"))
        assert [r["verdict"]["segment_id"] for r in found] == [seg.id]
        assert found[0]["verdict"]["text"] == "you idiot"
        assert await count(db, "alerts_outbox") == 1
        assert await count(db, "open_incidents") == 1


async def test_a_unit_refused_for_a_bug_keeps_its_delivered_alert_and_records_the_failure(
    db: PgDatabase, tmp_path: Path
) -> None:
    fleet = await holding(db, "a", ["s1"])
    async with AsyncExitStack() as stack:
        outcomes, _, stale, alerting = await instance(stack, db, tmp_path, fleet, window=0)
        seg = segment("s1", 0)
        # The result row refuses the score (out of an INTEGER's range); the rest is written.
        with pytest.raises(StateError) as raised:
            await outcomes.handle(stream("s1"), seg, risky(seg, score=2**31), None)
        assert not isinstance(raised.value, StaleWrite)
        assert stale == []
        assert await count(db, "alerts_outbox") == 1  # the NEW alert is out ...
        assert len(alerting.incidents.open) == 1  # ... so its incident stays, to END it

        async def row(conn: Connection) -> tuple[str, str]:
            cursor = await conn.execute("SELECT outcome, reason FROM results")
            got = await cursor.fetchone()
            assert got is not None
            return str(got[0]), str(got[1])

        outcome, reason = await db.run(row)
        assert outcome == Outcome.FAILED.value
        assert "out of range" in reason


async def test_a_unit_refused_as_stale_keeps_no_evidence(db: PgDatabase, tmp_path: Path) -> None:
    a = await holding(db, "a", ["s1"])
    # a's lease runs out (it was paused) and b takes s1 over; a does not know yet.
    await db.run(
        lambda conn: conn.execute(
            "UPDATE desired_streams SET lease_until = now() - interval '1 second'"
        )
    )
    b = Fleet(db, "b", lease_seconds=LEASE)
    await b.join()
    assert [lease.stream_id for lease in await b.claim()] == ["s1"]
    shared = PgEvidenceClips(db, keep_seconds=3600, max_bytes=10_000_000)
    evidence = EvidenceStore(
        tmp_path / "evidence", keep_seconds=3600, max_bytes=10_000_000, shared=shared
    )
    async with AsyncExitStack() as stack:
        outcomes, _, stale, alerting = await instance(stack, db, tmp_path, a, window=0)
        alerting.evidence = evidence
        seg = segment("s1", 0)
        clip = tmp_path / f"{seg.id}.mp3"
        clip.write_bytes(b"ID3 not really audio")
        with pytest.raises(StaleWrite):
            await outcomes.handle(stream("s1"), seg, risky(seg), clip)
        assert stale == ["s1"]
        assert alerting.incidents.open == []
        assert [p.name for p in evidence.directory.rglob("*") if p.is_file()] == []
        assert await count(db, "evidence_clips") == 0
        assert not clip.exists()
