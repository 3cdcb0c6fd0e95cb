"""The interface every moderation engine implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from streamguard.core.segment import Segment
from streamguard.core.verdict import Verdict

__all__ = ["Engine"]


@runtime_checkable
class Engine(Protocol):
    """Judges segments, from their samples; an engine that sends audio elsewhere (AMS)
    encodes what it sends itself.

    ``biz_type`` is the AMS BizType of the stream's policy profile; engines without such
    policies ignore it. ``moderate`` never raises for a segment it could not judge: it
    returns a ``Verdict`` whose outcome says so (failed, skipped) with a reason, so nothing
    is lost silently.
    """

    name: str
    version: str
    segments_in_flight: int
    """How many segments of one stream are usefully judged at once: 1 for an engine that
    works on this machine (more would only fill its backlog), more for one that waits on
    a service (AMS), so a slow answer does not hold the stream's later segments back."""

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict: ...

    async def aclose(self) -> None: ...
