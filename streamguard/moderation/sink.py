"""The ``AlertSink`` protocol: where moderation sends what it raises.

``streamguard.bus`` implements it (``MqttAlerts`` through the outbox, ``JsonLinesAlerts`` for
``streamguard moderate``); moderation depends only on this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Protocol

from streamguard.core.status import StreamEvent, StreamStatus
from streamguard.moderation.alert import Alert

__all__ = ["AlertSink", "Units", "no_unit"]

Units = Callable[[str], AbstractAsyncContextManager[object]]
"""Opens the unit of work of one segment (or one incident's end) of a stream id: what the
shared stores write inside (result, incident, alert, journal) is written together when the
block ends (fleet mode's ``state.postgres.units.WriteBatches.unit``)."""


def no_unit(stream_id: str) -> AbstractAsyncContextManager[object]:
    """No unit of work: every write is written at once (SQLite, ``moderate``)."""
    return nullcontext()


class AlertSink(Protocol):
    """Accepts alerts, stream health events and stream status; never drops an alert."""

    async def emit(self, alert: Alert) -> None:
        """Deliver an alert (durably queued before this returns, where the sink can)."""

    async def event(self, event: StreamEvent) -> None:
        """Deliver a stream health event (down, restored, silent, segment failed/skipped)."""

    async def status(self, status: StreamStatus) -> None:
        """Replace the published status of a stream."""
