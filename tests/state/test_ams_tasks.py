"""The AMS task store (``AmsTaskStore``) on both backends (``backend``), through one
instance's own calls: a segment queued, submitted, accepted, polled, requeued and settled
once. (Where the backends differ by design it is not asked: fleet mode keeps a ``queued``
row and its polls in memory, so ``counts`` reads only what was written; a stream's new
owner ``resume``s none of an earlier run's rows; adoption by another instance is
tests/fleet/test_ams_tasks.py's.)"""

from __future__ import annotations

from streamguard.core.excerpt import Excerpt
from streamguard.state.ams_tasks import SegmentState
from streamguard.testing.alerts import risky, segment
from tests.support.backends import Backend

FIRST, SECOND = segment("s1", 0), segment("s1", 1)


async def test_a_segment_goes_from_queued_to_settled_once(backend: Backend) -> None:
    await backend.lease("s1")
    tasks = backend.tasks()
    for n, seg in enumerate((FIRST, SECOND)):
        clip = f"/clips/{seg.id}.wav"
        await tasks.add(seg.info(), "biz", clip, True, Excerpt.whole(15.0), 100.0 + n)
    queued = await tasks.in_state(SegmentState.QUEUED)
    assert [r.segment_id for r in queued] == [FIRST.id, SECOND.id]  # oldest first
    assert queued[0].segment() == FIRST.info()
    assert (queued[0].clip, queued[0].biz_type, queued[0].owned_clip) == (
        f"/clips/{FIRST.id}.wav",
        "biz",
        True,
    )

    await tasks.mark_submitting([FIRST.id, SECOND.id], 102.0)
    submitting = await tasks.get(FIRST.id)
    assert submitting is not None
    assert (submitting.state, submitting.submit_attempts) == (SegmentState.SUBMITTING, 1)
    assert await tasks.counts() == {SegmentState.SUBMITTING: 2}

    await tasks.mark_accepted([(FIRST.id, "t-1", 110.0), (SECOND.id, "t-2", 105.0)], 103.0)
    await tasks.refresh()
    found = await tasks.by_task("t-2")
    assert found is not None
    assert (found.segment_id, found.state, found.ams_status) == (SECOND.id, "pending", "PENDING")
    due = await tasks.in_state(SegmentState.PENDING, due_by=106.0)
    assert [r.segment_id for r in due] == [SECOND.id]
    assert await tasks.by_task("t-unknown") is None

    await tasks.mark_polled(SECOND.id, "PROCESSING", 106.0, due_at=120.0)
    polled = await tasks.get(SECOND.id)
    assert polled is not None
    assert (polled.polls, polled.ams_status, polled.due_at) == (1, "PROCESSING", 120.0)
    await tasks.requeue(FIRST.id, 107.0, due_at=108.0, error="throttled")
    requeued = await tasks.get(FIRST.id)
    assert requeued is not None
    assert (requeued.state, requeued.last_error) == (SegmentState.QUEUED, "throttled")
    assert [r.segment_id for r in await tasks.in_state(SegmentState.QUEUED, 108.0)] == [FIRST.id]

    verdict = risky(SECOND)
    assert await tasks.finish(SECOND.id, verdict, 121.0, "FINISH") is True
    assert await tasks.finish(SECOND.id, verdict, 122.0, "FINISH") is False  # settled once
    assert await tasks.finish("s1-unknown", verdict, 122.0) is False
    settled = await tasks.get(SECOND.id)
    assert settled is not None
    assert settled.state == SegmentState.DONE
    assert settled.stored_verdict() == verdict.to_json()
    assert await tasks.in_state(SegmentState.PENDING) == []
    await tasks.refresh()
    assert await tasks.counts() == {SegmentState.QUEUED: 1, SegmentState.DONE: 1}
    assert await tasks.unconfirmed() == []  # this instance's verdicts are its own to hand on
