"""The local engine's counters and health events, as the daemon reads them for /metrics."""

from __future__ import annotations

import json

from streamguard.core.verdict import Outcome, Verdict
from streamguard.engines.local.stats import EngineStats, HealthEvent, HealthKind, Usage


def _verdict(outcome: Outcome, *, hit: bool = False, **details: str) -> Verdict:
    return Verdict("s", outcome, "local", "test", hit=hit, details=dict(details))


def _snapshot(stats: EngineStats) -> dict[str, object]:
    counters = stats.snapshot(
        backlog_depth=2, backlog_limit=8, running=1, library_reloads=3, library_reload_failures=1
    )
    return counters.to_json()


def test_judged_segments_add_their_outcome_and_cost() -> None:
    stats = EngineStats()
    stats.arrived()
    stats.judged(_verdict(Outcome.NO_SPEECH), Usage(10.0, busy_seconds=0.002), ())
    stats.arrived()
    moderated = _verdict(Outcome.MODERATED, hit=True, gate_error="RuntimeError: boom")
    stats.judged(moderated, Usage(10.0, 10.0, 10.0, busy_seconds=0.5, rechecked_seconds=2.0), ())
    counters = _snapshot(stats)
    assert {k: counters[k] for k in ("segments", "moderated", "no_speech", "hits")} == {
        "segments": 2,
        "moderated": 1,
        "no_speech": 1,
        "hits": 1,
    }
    assert counters["gate_failures"] == 1
    assert (counters["audio_seconds"], counters["no_speech_seconds_saved"]) == (20.0, 10.0)
    assert (counters["recognised_seconds"], counters["rechecked_seconds"]) == (10.0, 2.0)
    assert counters["busy_seconds"] == 0.502
    assert (counters["backlog_depth"], counters["backlog_limit"], counters["running"]) == (2, 8, 1)
    assert (counters["library_reloads"], counters["library_reload_failures"]) == (3, 1)


def test_health_events_reach_the_callback_and_are_counted_by_kind() -> None:
    seen: list[HealthEvent] = []
    stats = EngineStats(seen.append)
    overloaded = HealthEvent(HealthKind.OVERLOADED, "backlog full", "s-1")
    gate = HealthEvent(HealthKind.GATE_FAILED, "speech gate failed", "s-2")
    stats.skipped(overloaded)
    stats.failed()  # the engine was closed: nothing an operator must hear about
    stats.judged(_verdict(Outcome.MODERATED), Usage(1.0), (gate,))
    assert seen == [overloaded, gate]
    counters = stats.snapshot(
        backlog_depth=0, backlog_limit=1, running=0, library_reloads=0, library_reload_failures=0
    )
    assert (counters.skipped_overloaded, counters.failed) == (1, 1)
    assert counters.health_events == {
        HealthKind.OVERLOADED: 1,
        HealthKind.GATE_FAILED: 1,
        HealthKind.RECOGNITION_FAILED: 0,
        HealthKind.LIBRARY_RELOAD_FAILED: 0,
    }
    # A snapshot is a copy: later events do not change it.
    stats.failed(HealthEvent(HealthKind.RECOGNITION_FAILED, "failed: boom", "s-3"))
    assert counters.health_events[HealthKind.RECOGNITION_FAILED] == 0
    assert json.loads(json.dumps(counters.to_json()))["health_events"]["overloaded"] == 1
