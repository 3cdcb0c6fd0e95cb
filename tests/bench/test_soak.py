"""A short run of the fault-injection soak (``python -m bench.soak``), so it cannot rot.

Four live rooms for about 40 s under faults drawn closer together than in the real soak;
the same proof as the full run must hold: nothing heard without its result, every risky
result's alert delivered, the daemon never exiting on its own and stopping cleanly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak.__main__ import report
from bench.soak.driver import Timing
from bench.soak.run import Settings, soak

pytestmark = pytest.mark.slow

QUICK = Timing(
    room_every=(2.0, 5.0),
    system_every=(4.0, 8.0),
    room_down=(1.0, 4.0),
    broker_down=(1.0, 4.0),
    ams_burst=(4.0, 8.0),
    disk_full=(4.0, 8.0),
    killed=(0.5, 1.0),
)


async def test_a_short_soak_loses_nothing(tmp_path: Path) -> None:
    outcome = await soak(
        Settings(minutes=0.7, rooms=4, seed=3, workdir=tmp_path, disk_size="64m", timing=QUICK)
    )
    problems = report(outcome, max_rss_mb=2048)
    assert sum(outcome.driver.injected.values()) >= 2, outcome.driver.injected
    assert outcome.proof.segments > 0
    assert problems == []
