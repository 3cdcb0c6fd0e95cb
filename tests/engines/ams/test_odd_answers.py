"""AmsEngine against answers the real service may send (issue 12): odd shapes, unknown
suggestions, empty summaries, wrapped callbacks, a page-size cap, lost tasks, refused tasks.
Each runs end to end over real HTTP against the emulator serving that fault."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamguard.core.supervisor import Supervisor
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.emulator.faults import Faults, Shape
from streamguard.engines.ams.engine import AmsEngine
from streamguard.state.ams_tasks import TrackedSegment
from streamguard.state.db import Database, StorageUnavailable
from streamguard.tencentcloud.signing import callback_signature
from tests.engines.ams.test_ams_engine import live_segments, moderate_all
from tests.support.ams import ams_stack, engine_config, engine_for
from tests.support.waiting import eventually

PATTERN = ["tone", "noise", "noise"]
EXPECTED = [Suggestion.BLOCK, Suggestion.PASS, Suggestion.PASS]
LIMIT = 20.0
"""Seconds a scenario may take; on a main that stops or spins on these answers it hangs."""


async def judged(
    tmp_path: Path, faults: Faults, pattern: list[str] = PATTERN, **config: object
) -> tuple[list[Verdict], dict[str, int]]:
    """Moderate ``pattern`` against an emulator serving ``faults``; verdicts and calls."""
    segments = live_segments(f"room-{tmp_path.name[:20]}", pattern)
    async with (
        ams_stack(tmp_path / "clips", faults) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, **config) as engine,
        asyncio.timeout(LIMIT),
    ):
        verdicts = await moderate_all(engine, segments)
    return verdicts, dict(stack.emulator.stats.handled)


@pytest.mark.parametrize(
    "shape", [Shape.NULL_NESTED, Shape.FRACTIONAL_SCORES, Shape.ODD_TYPES], ids=str
)
@pytest.mark.parametrize("callbacks", [True, False], ids=["callbacks", "polling"])
async def test_odd_shapes_still_give_every_verdict(
    tmp_path: Path, shape: Shape, callbacks: bool
) -> None:
    verdicts, _ = await judged(tmp_path, Faults(shapes=frozenset({shape})), callbacks=callbacks)
    assert [v.outcome for v in verdicts] == [Outcome.MODERATED] * 3
    assert [v.suggestion for v in verdicts] == EXPECTED
    assert verdicts[0].label == "Abuse"


async def test_unknown_suggestions_are_reviewed_never_passed(tmp_path: Path) -> None:
    faults = Faults(shapes=frozenset({Shape.UNKNOWN_SUGGESTIONS}))
    verdicts, _ = await judged(tmp_path, faults, callbacks=False)
    # "Delete" is not a suggestion AMS documents: a person looks at it
    assert [v.suggestion for v in verdicts] == [Suggestion.REVIEW, Suggestion.PASS, Suggestion.PASS]
    assert verdicts[0].label == "Abuse"


async def test_an_empty_summary_is_not_a_pass_the_detail_decides(tmp_path: Path) -> None:
    faults = Faults(shapes=frozenset({Shape.EMPTY_SUMMARIES}))
    verdicts, calls = await judged(tmp_path, faults, callbacks=False)
    assert calls["DescribeTasks"] >= 1  # the summaries were read, and not trusted
    assert [v.suggestion for v in verdicts] == EXPECTED
    assert calls["DescribeTaskDetail"] >= 3


async def test_wrapped_callbacks_settle_tasks(tmp_path: Path) -> None:
    segments = live_segments("room-wrapped", PATTERN)
    faults = Faults(shapes=frozenset({Shape.WRAPPED_CALLBACKS}))
    async with (
        ams_stack(tmp_path / "clips", faults) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db, callback_grace=60.0) as engine,
        asyncio.timeout(LIMIT),
    ):
        verdicts = await moderate_all(engine, segments)
        settled, unrecognised = engine.callbacks_settled, engine.callbacks_unrecognised
    assert [v.suggestion for v in verdicts] == EXPECTED
    assert settled == 3
    assert unrecognised == 0
    assert stack.emulator.stats.calls["DescribeTaskDetail"] == 0


async def post_callback(url: str, body: bytes, signature: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=body,
            headers={"X-Signature": signature},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as response,
    ):
        return response.status


def seed_of(engine: AmsEngine) -> str:
    callbacks = engine._callbacks
    assert callbacks is not None
    return callbacks.seed


async def test_unrecognised_callbacks_are_counted_not_silently_accepted(tmp_path: Path) -> None:
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db) as engine,
    ):
        seed, url = seed_of(engine), stack.clips.callback_url
        statuses = []
        for body in (
            b"[1, 2, 3]",
            b'{"Response": {"Status": "FINISH"}}',
            b'{"TaskId": "w-audio-not-ours", "DataId": "x", "Status": "FINISH"}',
        ):
            # upper-case hex is the same signature
            statuses.append(await post_callback(url, body, callback_signature(seed, body).upper()))
        unrecognised = engine.callbacks_unrecognised
    assert statuses == [400, 400, 200]
    assert unrecognised == 3


async def test_a_lost_task_backs_off_and_fails_at_its_deadline(tmp_path: Path) -> None:
    faults = Faults(lost_first=1)
    verdicts, calls = await judged(tmp_path, faults, ["tone"], task_deadline=2.0)
    (verdict,) = verdicts
    assert verdict.outcome is Outcome.FAILED
    assert "ResourceNotFound" in verdict.reason
    assert "could not be polled" in verdict.reason
    # backed off (0.2, 0.4, 0.8 … s), not asked every tick: main asked 90 times in 10 s
    assert calls.get("DescribeTaskDetail", 0) <= 8


EIGHT = ["tone", "noise", "noise", "noise", "tone", "noise", "noise", "noise"]
EIGHT_EXPECTED = [Suggestion.BLOCK if kind == "tone" else Suggestion.PASS for kind in EIGHT]


async def test_describe_tasks_asks_for_at_most_20_a_page(tmp_path: Path) -> None:
    verdicts, calls = await judged(tmp_path, Faults(page_limit=20), EIGHT, callbacks=False)
    assert [v.suggestion for v in verdicts] == EIGHT_EXPECTED
    assert calls["DescribeTasks"] >= 1
    assert calls["DescribeTaskDetail"] < 8  # passes were settled from the summaries


async def test_pages_follow_the_page_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamguard.engines.ams.pages.PAGE_LIMIT", 2)
    verdicts, calls = await judged(tmp_path, Faults(page_limit=2), EIGHT, callbacks=False)
    assert [v.suggestion for v in verdicts] == EIGHT_EXPECTED
    assert calls["DescribeTasks"] >= 4  # eight tasks due at once, two a page
    assert calls["DescribeTaskDetail"] < 8


async def test_a_refused_page_size_falls_back_to_each_tasks_detail(tmp_path: Path) -> None:
    verdicts, calls = await judged(tmp_path, Faults(page_limit=3), EIGHT, callbacks=False)
    assert [v.suggestion for v in verdicts] == EIGHT_EXPECTED
    assert "DescribeTasks" not in calls  # refused, every time it was asked
    assert calls["DescribeTaskDetail"] >= 8


async def test_a_task_refused_in_the_create_answer_is_sent_again(tmp_path: Path) -> None:
    verdicts, calls = await judged(tmp_path, Faults(refused_first=1), callbacks=False)
    assert [v.suggestion for v in verdicts] == EXPECTED
    assert calls["CreateAudioModerationTask"] == 2


def test_the_callback_seed_is_a_plain_hash() -> None:
    # guards the helper above: the signature the tests send is the documented one
    assert callback_signature("s", b"b") == hashlib.sha256(b"sb").hexdigest()


async def test_a_full_disk_holds_the_loops_back_without_crashing_them(tmp_path: Path) -> None:
    segments = live_segments("room-disk", PATTERN)
    full = asyncio.Event()
    refused = 0
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        Supervisor() as supervisor,
        AmsEngine(
            engine_config(stack.emulator.url),
            db,
            client=stack.client,
            clips=stack.clips,
            supervisor=supervisor,
        ) as engine,
        asyncio.timeout(LIMIT),
    ):
        in_state = engine.store.in_state

        async def refusing(*args: Any, **kwargs: Any) -> list[TrackedSegment]:
            nonlocal refused
            if full.is_set():  # the seam we own: the store, as a full disk answers it
                refused += 1
                raise StorageUnavailable("database or disk is full")
            return await in_state(*args, **kwargs)

        engine.store.in_state = refusing  # type: ignore[method-assign]
        full.set()
        judging = asyncio.create_task(moderate_all(engine, segments), name="test.judging")
        await eventually(lambda: refused >= 2)
        full.clear()
        verdicts = await judging
        crashes = {name: loop.crashes for name, loop in supervisor.loops.items()}
    assert [v.suggestion for v in verdicts] == EXPECTED
    assert crashes == {"ams.submitter": 0, "ams.poller": 0}
