"""``moderate``'s closing summary for a person, and its exit code when nothing was judged."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter

from streamguard import __version__
from streamguard.cli.moderate import _Summary
from streamguard.core.verdict import Outcome
from streamguard.streams.pipeline import SegmentResult
from streamguard.testing.alerts import risky, segment


def result(seq: int, outcome: Outcome, score: int = 95) -> SegmentResult:
    seg = segment(seq=seq)
    return SegmentResult(seg, None, risky(seg, score=score, outcome=outcome))


def test_the_summary_counts_segments_flagged_and_alerts() -> None:
    summary = _Summary()
    summary.add(result(0, Outcome.MODERATED))
    summary.add(result(1, Outcome.FAILED))
    summary.alerts = Counter({("Abuse", "high"): 2})
    out = io.StringIO()
    assert summary.report(out) == 0  # one segment was judged
    assert out.getvalue() == (
        "== 2 segment(s) (1 failed, 1 moderated); 1 flagged (1 Block Abuse); 2 alert(s)\n"
    )


def test_every_segment_failed_is_an_error() -> None:
    summary = _Summary()
    for seq in range(3):
        summary.add(result(seq, Outcome.FAILED if seq else Outcome.NOT_MODERATED))
    out = io.StringIO()
    assert summary.report(out) == 1
    assert "every segment failed" in out.getvalue()


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamguard", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"streamguard {__version__}"
