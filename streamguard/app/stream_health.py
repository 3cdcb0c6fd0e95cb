"""``StreamHealth``: a stream's state changes, published as its retained status and as health
events — ``down`` once when audio stops or never starts (a source ``failing`` to connect),
``restored`` once when it is back (whatever states lie between), ``silent`` when speech
stops. The status and the ``down`` event carry the last error."""

from __future__ import annotations

from datetime import UTC, datetime

from streamguard.config.streams import StreamConfig
from streamguard.core.status import StreamEvent, StreamEventKind, StreamState, StreamStatus
from streamguard.moderation.sink import AlertSink

__all__ = ["StreamHealth"]


class StreamHealth:
    """The runners' ``on_state``: status first (what consumers see as current), then events."""

    def __init__(self, sink: AlertSink, silent_minutes: float) -> None:
        self._sink = sink
        self._silent_seconds = silent_minutes * 60
        self._down: set[str] = set()

    async def changed(self, stream: StreamConfig, state: StreamState, error: str | None) -> None:
        """Publish ``stream``'s new ``state`` and the health event it means, if any."""
        now = datetime.now(UTC)
        await self._sink.status(StreamStatus(stream.id, stream.room_id, state, now, error))
        kind = self.event(stream.id, state)
        if kind is None:
            return
        silent = self._silent_seconds if kind is StreamEventKind.SILENT else None
        await self._sink.event(
            StreamEvent(stream.id, stream.room_id, kind, now, error or "", silent_seconds=silent)
        )

    def event(self, stream_id: str, state: StreamState) -> StreamEventKind | None:
        """The health event a change to ``state`` means for ``stream_id``, if any."""
        if state.down:
            if stream_id in self._down:
                return None
            self._down.add(stream_id)
            return StreamEventKind.DOWN
        if state is StreamState.ONLINE and stream_id in self._down:
            self._down.discard(stream_id)
            return StreamEventKind.RESTORED
        if state is StreamState.SILENT:
            return StreamEventKind.SILENT
        if state.finished:
            self._down.discard(stream_id)
        return None
