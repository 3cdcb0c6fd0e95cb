"""``Outcomes``: the one path from a judged segment to everything that follows from it.

    verdict → decide (risk under the stream's profile) → record the result
            → keep or drop the evidence clip → incident → alert

Live segments (from a stream's pipeline) and late AMS verdicts (settled after a restart)
both come through ``handle``; this module is the only caller of ``policy.decide``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.policy import Decision, decide
from streamguard.state.results import ResultStore

__all__ = ["Outcomes"]


class Outcomes:
    """Decides once per verdict, records it (when ``results`` is given) and alerts on it."""

    def __init__(
        self,
        profiles: Mapping[str, ProfileConfig],
        alerting: Alerting,
        results: ResultStore | None = None,
    ) -> None:
        self._profiles = profiles
        self._alerting = alerting
        self._results = results

    def decide(self, stream: StreamConfig, verdict: Verdict) -> Decision:
        """The risk decision on ``verdict`` under ``stream``'s profile as it is now."""
        return decide(self._profiles[stream.profile], stream, verdict)

    async def handle(
        self,
        stream: StreamConfig,
        segment: Segment | SegmentInfo,
        verdict: Verdict,
        clip: Path | None,
        *,
        detected_at: datetime | None = None,
    ) -> list[Alert]:
        """Decide, record and alert on one segment of ``stream``; return the alerts emitted.

        The clip (if any) is taken over: kept as evidence when the segment alerts, else
        deleted. ``detected_at`` dates the alert (default: now); a late verdict's alert is
        dated at its segment's end.
        """
        decision = self.decide(stream, verdict)
        if self._results is not None:
            await self._results.record(stream.room_id, segment, verdict, decision.risk.value)
        return await self._alerting.raise_alerts(
            stream, segment, verdict, decision, clip, detected_at=detected_at
        )

    async def replace(self, stream: StreamConfig, verdict: Verdict) -> bool:
        """Bring a recorded result up to date when its segment is no longer known (no
        alert can be built without it); False when nothing was recorded for it."""
        if self._results is None:
            return False
        decision = self.decide(stream, verdict)
        return await self._results.replace_verdict(verdict, decision.risk.value)
