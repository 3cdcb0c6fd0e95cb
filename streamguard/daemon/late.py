"""Verdicts that come late: recorded and alerted on like any other.

An AMS task can settle when nobody waits for it any more: the daemon was restarted (killed,
or its shutdown deadline recorded the segment as failed) and the task store polled the task
again. Its verdict still belongs to a segment someone spoke in, so it is recorded (replacing
any "failed" row) and goes through alerting, which publishes through the outbox like any
alert. A late alert has no evidence clip: the clip was AMS's copy and is gone. Its
``segment.ended_at`` tells a consumer how late it is against ``detected_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from streamguard.alerts.alerting import Alerting
from streamguard.alerts.policy import decide
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.engine.verdict import Verdict
from streamguard.ingest.segment import SegmentInfo
from streamguard.state.results import Results

__all__ = ["LateVerdicts"]

log = logging.getLogger("streamguard.daemon")

DEFAULT_PROFILE = "default"


class LateVerdicts:
    """The engine's ``on_late_verdict``: record the verdict and alert on it.

    ``streams`` is the daemon's live view of the streams it knows (configured, or attached
    through the API since start); ``profiles`` gives the current profiles (they change on
    SIGHUP). A segment of a stream no longer known is judged with the ``default`` profile (or
    the first one) under its stream id, and that is logged.
    """

    def __init__(
        self,
        *,
        streams: Mapping[str, StreamConfig],
        profiles: Callable[[], Mapping[str, ProfileConfig]],
        results: Results,
        alerting: Alerting,
    ) -> None:
        self._streams = streams
        self._profiles = profiles
        self._results = results
        self._alerting = alerting
        self.handled = 0
        """Late verdicts recorded (and alerted on when risky) since start."""

    async def __call__(self, verdict: Verdict, segment: SegmentInfo | None) -> None:
        if segment is None:
            await self._replace_only(verdict)
            return
        stream = self._stream(segment.stream_id)
        decision = decide(self._profiles()[stream.profile], stream, verdict)
        log.info(
            "late verdict for segment %s: %s (%s risk)",
            segment.id,
            verdict.outcome.value,
            decision.risk.value,
        )
        await self._results.record(stream.room_id, segment, verdict, decision.risk.value)
        await self._alerting.handle(stream, segment, verdict, None)
        self.handled += 1

    def _stream(self, stream_id: str) -> StreamConfig:
        profiles = self._profiles()
        known = self._streams.get(stream_id)
        if known is not None and known.profile in profiles:
            return known
        profile = DEFAULT_PROFILE if DEFAULT_PROFILE in profiles else min(profiles)
        log.warning(
            "late verdict for stream %s, which is no longer configured as it was: judged with"
            " profile %r, room id = stream id",
            stream_id,
            profile,
        )
        return StreamConfig(id=stream_id, url="(no longer attached)", profile=profile)

    async def _replace_only(self, verdict: Verdict) -> None:
        # A task tracked before segments were kept with it: no alert can be built, but the
        # recorded result is brought up to date.
        stream_id = await self._results.stream_of(verdict.segment_id)
        stream = self._streams.get(stream_id or "")
        risk = "none"
        if stream is not None and stream.profile in self._profiles():
            risk = decide(self._profiles()[stream.profile], stream, verdict).risk.value
        if await self._results.replace_verdict(verdict, risk):
            self.handled += 1
            log.warning("late verdict for segment %s recorded without alert", verdict.segment_id)
        else:
            log.warning("late verdict for unknown segment %s", verdict.segment_id)
