"""Fault-injection soak: ``.venv/bin/python -m bench.soak [--minutes 10] [--rooms 12]``.

Runs ``streamguard run -c FILE`` as a child process with live rooms on loopback (MP3
broadcasts paced at real time, half of them in the config file and half attached through
the API), judged through the AMS engine by the AMS emulator, alerting to a real mosquitto,
while a seeded driver injects faults at random: rooms dropped, stalled and fed garbage;
the broker stopped and restarted; bursts of AMS faults (throttling, 503, InternalError,
hung answers, stuck and failed tasks); the state disk (a small tmpfs) filled and freed;
SIGKILL of the daemon and a restart. Then it winds down (every fault healed, SIGTERM, and
restarts of the daemon while AMS verdicts or alerts still wait), and proves from the
database, the rooms' logs and a persistent-session QoS 1 consumer what ``bench.soak.proof``
states. It prints the figures and exits 1 if anything was lost or duplicated, the daemon
ever exited on its own, did not stop cleanly, or its RSS passed ``--max-rss-mb``.
The tmpfs needs root; without it the disk fault is left out and the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from bench.soak.daemon import Daemon
from bench.soak.run import Outcome, Settings, soak

MB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="time under faults")
    parser.add_argument("--rooms", type=int, default=12, help="live rooms (at least 10)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-rss-mb", type=float, default=1024.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="streamguard-soak-"))
    settings = Settings(minutes=args.minutes, rooms=args.rooms, seed=args.seed, workdir=workdir)
    try:
        outcome = asyncio.run(soak(settings))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    problems = report(outcome, args.max_rss_mb)
    if args.keep:
        print(f"work directory kept: {workdir}")
    return 1 if problems else 0


def report(outcome: Outcome, max_rss_mb: float) -> list[str]:
    """Print the figures; return what failed (empty: the soak passed)."""
    proof, driver, daemon = outcome.proof, outcome.driver, outcome.daemon
    rss = [value for _, value in daemon.rss_samples]
    peak = max(rss, default=0) / MB
    print("streamguard fault-injection soak (the machine is shared: figures are floors)")
    print(
        f"  wall time {outcome.seconds / 60:.1f} min, {len(driver.rooms)} rooms, "
        f"seed {driver.seed}, disk: {outcome.disk_note}"
    )
    faults = ", ".join(f"{k} {v}" for k, v in sorted(driver.injected.items()))
    total = sum(v for k, v in driver.injected.items() if not k.startswith("ams:"))
    print(f"  faults injected: {total} ({faults})")
    runs = ", ".join(f"{life.ended_by}" for life in daemon.lifetimes)
    print(
        f"  daemon runs: {len(daemon.lifetimes)} ({runs}); crashes {driver.crashes}; "
        f"final SIGTERM exit {outcome.final_exit}; settle runs {outcome.settle_runs}"
    )
    ready = [life.ready_after for life in daemon.lifetimes if life.ready_after is not None]
    print(f"  restart to API up: max {max(ready, default=0):.1f} s")
    print(
        f"  audio heard {proof.heard_seconds:.0f} s, in results {proof.recorded_seconds:.0f} s;"
        f" heard without a result at a run's end (s): "
        f"{ {k: round(v, 1) for k, v in sorted(proof.in_flight.items())} }, "
        f"worst stream margin {proof.worst_margin:+.1f} s (<= 0: within what was in flight)"
    )
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(proof.outcomes.items()))
    print(f"  segments with a result: {proof.segments} ({outcomes})")
    print(
        f"  risky results {proof.risky}; alerts raised {proof.raised}, delivered "
        f"{proof.delivered} ({proof.deliveries} deliveries: "
        f"{proof.deliveries - proof.delivered} duplicates)"
    )
    print(
        f"  consumer reconnects {outcome.consumer.reconnects}; instance events "
        f"{dict(sorted(outcome.consumer.events.items()))}"
    )
    for loop, count in sorted(outcome.consumer.loop_restarts.items()):
        print(f"  loop restarted {count}x: {loop}")
    print(f"  peak RSS {peak:.0f} MB over {len(rss)} samples; {_growth(daemon)}")
    print(
        f"  lost: {proof.lost} (segments missing audio {proof.lost_segments}, holes "
        f"{len(proof.holes)}, risky without alert {len(proof.risky_without_alert)}, "
        f"undelivered {len(proof.undelivered)}, history missing {len(proof.history_missing)}, "
        f"dead letters {proof.dead_letters}, "
        f"AMS still pending {proof.pending_ams}); duplicate judgements {len(proof.duplicates)}"
    )
    problems = _problems(outcome, peak, max_rss_mb)
    for problem in problems:
        print(f"  FAIL {problem}")
    print("  PASS" if not problems else f"  {len(problems)} problem(s)")
    return problems


def _growth(daemon: Daemon) -> str:
    """RSS at the first and the last minute of the longest run (a leak shows as growth)."""
    spans = [
        (life.ended_at - life.started_at, life.started_at, life.ended_at)
        for life in daemon.lifetimes
        if life.ended_at is not None
    ]
    if not spans:
        return "no complete run"
    length, start, end = max(spans)
    first = [rss for at, rss in daemon.rss_samples if start + 30 <= at < start + 90]
    last = [rss for at, rss in daemon.rss_samples if end - 60 <= at < end]
    if not first or not last or length < 180:
        return f"longest run {length / 60:.1f} min, too short to compare"
    return (
        f"longest run {length / 60:.1f} min: peak {max(first) / MB:.0f} MB in its 2nd minute,"
        f" {max(last) / MB:.0f} MB in its last"
    )


def _problems(outcome: Outcome, peak_mb: float, max_rss_mb: float) -> list[str]:
    proof = outcome.proof
    problems = [*proof.unheard, *proof.holes, *proof.duplicates]
    problems += [f"risky result without an alert: {s}" for s in proof.risky_without_alert]
    problems += [f"alert raised, never delivered: {a}" for a in proof.undelivered]
    problems += [f"alert delivered, not in the history: {a}" for a in proof.history_missing]
    if proof.dead_letters:
        problems.append(f"{proof.dead_letters} alert(s) in the dead letters")
    if proof.pending_ams:
        problems.append(f"{proof.pending_ams} segment(s) still waiting for AMS")
    if proof.failed_without_reason:
        problems.append(f"{proof.failed_without_reason} failed result(s) without a reason")
    if outcome.driver.crashes:
        problems.append(f"the daemon exited on its own {outcome.driver.crashes} time(s)")
    if outcome.final_exit != 0:
        problems.append(f"SIGTERM exit code {outcome.final_exit}")
    if peak_mb > max_rss_mb:
        problems.append(f"peak RSS {peak_mb:.0f} MB > {max_rss_mb:.0f} MB")
    if not proof.risky or not proof.segments:
        problems.append("nothing risky was judged: the soak proved nothing")
    return problems


if __name__ == "__main__":
    sys.exit(main())
