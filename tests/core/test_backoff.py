"""``Backoff``: exponential, jittered both ways, capped after the jitter, bounded."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamguard.config.ingest import BackoffConfig
from streamguard.core.backoff import Backoff


@given(
    initial=st.floats(0.01, 10),
    spread=st.floats(1, 100),
    multiplier=st.floats(1, 4),
    jitter=st.floats(0, 1),
    retry=st.integers(0, 60),
    seed=st.integers(0, 2**32),
)
def test_a_delay_never_exceeds_the_cap_nor_falls_below_the_jittered_floor(
    initial: float, spread: float, multiplier: float, jitter: float, retry: int, seed: int
) -> None:
    backoff = Backoff(initial, initial * spread, multiplier, jitter)
    delay = backoff.delay(retry, random.Random(seed))
    assert delay <= backoff.maximum
    assert delay >= initial * (1 - jitter) - 1e-9


def test_delays_grow_exponentially_until_the_cap() -> None:
    backoff = Backoff(initial=1, maximum=10, multiplier=2, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_the_jitter_spreads_delays_that_hit_the_cap() -> None:
    backoff = Backoff(initial=1, maximum=10, multiplier=2, jitter=0.5)
    rng = random.Random(7)
    delays = {round(backoff.delay(20, rng), 3) for _ in range(50)}
    assert len(delays) > 10  # capped delays are still spread, so peers do not retry together
    assert max(delays) <= 10


def test_attempts_and_total_time_bound_a_retry_loop() -> None:
    backoff = Backoff(attempts=3, total_seconds=5)
    assert not backoff.gives_up(2, 1.0)
    assert backoff.gives_up(3, 1.0)
    assert backoff.gives_up(1, 5.0)
    assert not Backoff().gives_up(10_000, 1e9)


def test_a_config_section_describes_a_schedule() -> None:
    config = BackoffConfig(initial=0.5, maximum=8, multiplier=3, jitter=0.1)
    backoff = Backoff.of(config, attempts=4)
    assert (backoff.initial, backoff.maximum, backoff.multiplier, backoff.jitter) == (
        0.5,
        8,
        3,
        0.1,
    )
    assert backoff.attempts == 4


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"multiplier": 0.5}, {"jitter": 2}]
)
def test_a_schedule_that_makes_no_sense_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**kwargs)
