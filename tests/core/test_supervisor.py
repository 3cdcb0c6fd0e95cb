"""``Supervisor``: a loop that raises is reported and restarted; its neighbours go on."""

from __future__ import annotations

import asyncio

import pytest

from streamguard.core.backoff import Backoff
from streamguard.core.supervisor import Supervisor

QUICK = Backoff(initial=0.01, maximum=0.05, jitter=0.0)


async def test_a_loop_that_raises_is_reported_and_restarted() -> None:
    runs = 0
    crashes: list[tuple[str, str]] = []
    again = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"boom {runs}")
        again.set()
        await asyncio.Event().wait()

    async def report(name: str, exc: BaseException) -> None:
        crashes.append((name, str(exc)))

    async with Supervisor(backoff=QUICK) as supervisor:
        supervisor.report_to(report)
        loop = supervisor.start("flaky", flaky)
        await asyncio.wait_for(again.wait(), 5)
        assert loop.crashes == 2
        assert loop.last_error == "RuntimeError: boom 2"
        await loop.stop()
    assert crashes == [("flaky", "boom 1"), ("flaky", "boom 2")]


async def test_a_crash_does_not_cancel_the_neighbours_or_the_owner() -> None:
    ticks = 0

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def broken() -> None:
        raise ValueError("always")

    async with Supervisor(backoff=QUICK) as supervisor:
        steady_loop = supervisor.start("steady", steady)
        broken_loop = supervisor.start("broken", broken)
        await asyncio.sleep(0.3)
        assert broken_loop.crashes >= 3
        assert not steady_loop.task.done()
        seen = ticks
        await asyncio.sleep(0.05)
        assert ticks > seen
    assert steady_loop.task.cancelled()


async def test_a_loop_that_returns_is_done_and_not_restarted() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    async with Supervisor(backoff=QUICK) as supervisor:
        loop = supervisor.start("once", once)
        async with asyncio.timeout(5):
            await loop.finished()
        await asyncio.sleep(0.05)
    assert runs == 1
    assert loop.crashes == 0


async def test_a_failing_report_does_not_stop_the_restarts() -> None:
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("first")
        done.set()

    async def report(name: str, exc: BaseException) -> None:
        raise OSError("bus away")

    async with Supervisor(backoff=QUICK) as supervisor:
        supervisor.report_to(report)
        supervisor.start("flaky", flaky)
        await asyncio.wait_for(done.wait(), 5)
    assert runs == 2


async def test_one_name_runs_once_at_a_time() -> None:
    async with Supervisor(backoff=QUICK) as supervisor:
        supervisor.start("x", _forever)
        with pytest.raises(RuntimeError, match="already running"):
            supervisor.start("x", _forever)


async def _forever() -> None:
    await asyncio.Event().wait()
