"""Verdicts that come late: recorded and alerted on like any other, through ``Outcomes``.

An AMS task can settle when nobody waits for it any more: the daemon was restarted (killed,
or its shutdown deadline recorded the segment as failed) and the task store polled the task
again. Its verdict still belongs to a segment someone spoke in, so it is recorded (replacing
any "failed" row) and alerted on, published through the outbox like any alert.

A late alert differs from a timely one in two ways a consumer can see. It has no evidence
clip: the clip was AMS's copy and is gone. And its ``detected_at`` is its segment's end, so
``latency_seconds`` counts from when the audio was heard and the alert is ``stale`` once that
is more than ``mqtt.stale_after_seconds`` ago, like an alert held back by a broker outage.

The restarted daemon may no longer run the stream, so the stream is taken as it was last
attached (``state.attached``). In fleet mode the verdict may be of a task another instance
tracked (it died, or drained, with the task in flight; the stream's new owner settled it),
and the stream is taken from the shared desired set first.
"""

from __future__ import annotations

import logging
from typing import Protocol

from streamguard.config.streams import StreamConfig
from streamguard.core.segment import SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.profiles import Profiles
from streamguard.state.attached import AttachedStream
from streamguard.state.results import ResultStore

__all__ = ["LateVerdicts", "StreamMemory"]

log = logging.getLogger("streamguard.late")

NOT_ATTACHED = "(no longer attached)"
"""The URL of a stream known only from ``attached_streams``; nothing reads it."""


class StreamMemory(Protocol):
    """What was kept of a stream (``state.attached.AttachedStreams``; in fleet mode the
    shared desired set first: the stream may have run on another instance)."""

    async def get(self, stream_id: str) -> AttachedStream | None:
        """The stream's room, profile and metadata; None when it was never kept."""


class LateVerdicts:
    """The engine's ``on_late_verdict``: the verdict goes through ``Outcomes``.

    A stream whose profile is gone is judged with ``Profiles.fallback()``, and one never
    remembered (last attached before streams were kept) also gets its stream id as room id.
    Both are logged.
    """

    def __init__(
        self,
        *,
        attached: StreamMemory,
        profiles: Profiles,
        results: ResultStore,
        outcomes: Outcomes,
    ) -> None:
        self._attached = attached
        self._profiles = profiles
        self._results = results
        self._outcomes = outcomes
        self.handled = 0
        """Late verdicts recorded (and alerted on when risky) since start."""

    async def __call__(self, verdict: Verdict, segment: SegmentInfo | None) -> None:
        if segment is None:
            await self._replace_only(verdict)
            return
        stream = await self._stream(segment.stream_id)
        log.info("late verdict for segment %s: %s", segment.id, verdict.outcome.value)
        await self._outcomes.handle(stream, segment, verdict, None, detected_at=segment.ended_at)
        self.handled += 1

    async def _stream(self, stream_id: str) -> StreamConfig:
        """The stream as last attached, with a profile that still exists."""
        kept = await self._attached.get(stream_id)
        if kept is None:
            room, profile, metadata = stream_id, "", {}
            log.warning("late verdict for stream %s, which was never remembered", stream_id)
        else:
            room, profile, metadata = kept.room, kept.profile, kept.metadata
        if profile not in self._profiles:
            fallback = self._profiles.fallback()
            log.warning(
                "late verdict for stream %s of room %s: profile %r is not defined, judged with %r",
                stream_id,
                room,
                profile,
                fallback,
            )
            profile = fallback
        return StreamConfig(
            id=stream_id, url=NOT_ATTACHED, room=room, profile=profile, metadata=metadata
        )

    async def _replace_only(self, verdict: Verdict) -> None:
        # A task tracked before segments were kept with it: no alert can be built, but the
        # recorded result is brought up to date.
        stream_id = await self._results.stream_of(verdict.segment_id)
        if stream_id is None:
            log.warning("late verdict for unknown segment %s", verdict.segment_id)
            return
        stream = await self._stream(stream_id)
        if await self._outcomes.replace(stream, verdict):
            self.handled += 1
            log.warning("late verdict for segment %s recorded without alert", verdict.segment_id)
