"""``Outcomes``: the one path from a judged segment to everything that follows from it.

    verdict → decide (risk under the stream's profile) → record the result
            → keep or drop the evidence clip → incident → alert

Live segments (from a stream's pipeline) and late AMS verdicts (settled after a restart)
both come through ``handle``; this module is the only caller of ``policy.decide``. Frames of
a stream's video come through ``handle_frame``, decided by the profile's image rules
(``policy.decide_picture``) and alerted on by the same incidents: a frame hit and an audio
hit of one room and label are one incident, and the frame's JPEG is its evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.frame import FrameInfo
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Outcome, Verdict
from streamguard.moderation.alert import Alert
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.policy import Decision, decide, decide_picture
from streamguard.moderation.sink import Units, no_unit
from streamguard.state.db import StateError
from streamguard.state.postgres.database import StaleWrite
from streamguard.state.results import ResultStore

__all__ = ["Outcomes"]

log = logging.getLogger(__name__)


class Outcomes:
    """Decides once per verdict, records it (when ``results`` is given) and alerts on it."""

    def __init__(
        self,
        profiles: Mapping[str, ProfileConfig],
        alerting: Alerting,
        results: ResultStore | None = None,
        units: Units = no_unit,
    ) -> None:
        self._profiles = profiles
        self._alerting = alerting
        self._results = results
        self._units = units

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
        return await self._recorded(
            stream, segment, verdict, decision, clip, detected_at=detected_at
        )

    async def handle_frame(
        self,
        stream: StreamConfig,
        frame: FrameInfo,
        verdict: Verdict,
        jpeg: Path | None,
        *,
        detected_at: datetime | None = None,
    ) -> list[Alert]:
        """Decide, record and alert on one frame of ``stream``, as ``handle`` does a segment;
        ``jpeg`` (the frame's picture, if written) is taken over like a clip."""
        decision = decide_picture(
            self._profiles[stream.profile], verdict, stream, frame.fingerprint
        )
        return await self._recorded(stream, frame, verdict, decision, jpeg, detected_at=detected_at)

    async def _recorded(
        self,
        stream: StreamConfig,
        segment: Segment | SegmentInfo | FrameInfo,
        verdict: Verdict,
        decision: Decision,
        clip: Path | None,
        *,
        detected_at: datetime | None,
    ) -> list[Alert]:
        """Record and alert, in one unit of work. The unit refused as stale (its stream
        moved on: nothing of it written), the incidents it opened are withdrawn. Refused for
        another reason, it was written again write by write, so its alerts may well be out:
        nothing is withdrawn (a NEW alert delivered is followed by its END), and the
        segment is recorded as failed with the reason (never left neither moderated nor
        failed)."""
        alerts: list[Alert] = []
        try:
            async with self._units(segment.stream_id):
                if self._results is not None:
                    await self._results.record(
                        stream.room_id, segment, verdict, decision.risk.value
                    )
                alerts = await self._alerting.raise_alerts(
                    stream, segment, verdict, decision, clip, detected_at=detected_at
                )
        except StaleWrite:
            self._alerting.withdraw(alerts)
            if clip is not None and not isinstance(segment, FrameInfo):
                await self._alerting.forget_evidence(segment, clip)
            raise
        except StateError as exc:
            await self._record_failed(stream, segment, verdict, exc)
            raise
        return alerts

    async def _record_failed(
        self,
        stream: StreamConfig,
        segment: Segment | SegmentInfo | FrameInfo,
        verdict: Verdict,
        error: StateError,
    ) -> None:
        """Record ``segment`` as failed, with why its writes were refused (the latest
        record of a segment wins: this one replaces a moderated result written alone)."""
        if self._results is None:
            return
        failed = Verdict(
            segment_id=verdict.segment_id,
            outcome=Outcome.FAILED,
            engine=verdict.engine,
            engine_version=verdict.engine_version,
            reason=f"not recorded: {error}",
        )
        try:
            risk = self.decide(stream, failed).risk.value
            await self._results.record(stream.room_id, segment, failed, risk)
        except StateError as again:
            log.error(
                "segment %s: neither its result nor its failure could be recorded: %s",
                verdict.segment_id,
                again,
                extra={"stream_id": segment.stream_id},
            )

    async def replace(self, stream: StreamConfig, verdict: Verdict) -> bool:
        """Bring a recorded result up to date when its segment is no longer known (no
        alert can be built without it); False when nothing was recorded for it."""
        if self._results is None:
            return False
        decision = self.decide(stream, verdict)
        return await self._results.replace_verdict(verdict, decision.risk.value)
