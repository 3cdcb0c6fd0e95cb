"""Stream status and health events, and this instance's availability on the bus.

Status is retained (the latest per stream); health events are messages, delivered through
the outbox like alerts. A segment that failed or was skipped is a health event, not an alert.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from streamguard.core.redact import redact

__all__ = [
    "InstanceEvent",
    "InstanceEventKind",
    "StreamEvent",
    "StreamEventKind",
    "StreamState",
    "StreamStatus",
    "instance_payload",
]

SCHEMA_VERSION = "1"


class StreamState(StrEnum):
    """Where a stream is in its life: the one vocabulary of sources, runners, the API and
    the bus. The retained status topic shows the coarser ``published`` form."""

    STARTING = "starting"
    CONNECTING = "connecting"
    ONLINE = "online"
    SILENT = "silent"
    RECONNECTING = "reconnecting"
    RESTARTING = "restarting"
    ENDED = "ended"
    STOPPED = "stopped"
    FAILED = "failed"
    FAILING = "failing"
    """Attempts to connect keep failing (refused, 404, timed out, no audio): still retried,
    but down, with the last error and the number of attempts to show for it."""

    @property
    def published(self) -> str:
        """What consumers of the retained status see: online, reconnecting, offline, silent."""
        return _PUBLISHED[self]

    @property
    def down(self) -> bool:
        """True while the stream should have audio and has none (a health ``down``)."""
        return self in (
            StreamState.RECONNECTING,
            StreamState.RESTARTING,
            StreamState.FAILED,
            StreamState.FAILING,
        )

    @property
    def finished(self) -> bool:
        """True once the stream's runner has returned for good."""
        return self in (StreamState.ENDED, StreamState.STOPPED, StreamState.FAILED)


_PUBLISHED = {
    StreamState.STARTING: "reconnecting",
    StreamState.CONNECTING: "reconnecting",
    StreamState.ONLINE: "online",
    StreamState.SILENT: "silent",
    StreamState.RECONNECTING: "reconnecting",
    StreamState.RESTARTING: "reconnecting",
    StreamState.ENDED: "offline",
    StreamState.STOPPED: "offline",
    StreamState.FAILED: "offline",
    StreamState.FAILING: "reconnecting",
}


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """The latest state of one stream, published retained."""

    stream_id: str
    room_id: str
    state: StreamState
    since: datetime
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "stream_id": self.stream_id,
            "room_id": self.room_id,
            "state": self.state.published,
            "since": self.since.isoformat(),
            "last_error": redact(self.last_error),
        }


class StreamEventKind(StrEnum):
    """Health events of a stream."""

    DOWN = "down"
    RESTORED = "restored"
    SILENT = "silent"
    SEGMENT_FAILED = "segment_failed"
    SEGMENT_SKIPPED = "segment_skipped"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One health event of a stream; ``event_id`` is stable so consumers can drop duplicates."""

    stream_id: str
    room_id: str
    kind: StreamEventKind
    at: datetime
    detail: str = ""
    segment_id: str | None = None
    silent_seconds: float | None = None

    @property
    def event_id(self) -> str:
        key = "\x1f".join((self.stream_id, self.kind, self.at.isoformat(), self.segment_id or ""))
        return "evt-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "stream_id": self.stream_id,
            "room_id": self.room_id,
            "kind": self.kind.value,
            "at": self.at.isoformat(),
            "detail": redact(self.detail),
            "segment_id": self.segment_id,
            "silent_seconds": self.silent_seconds,
        }


class InstanceEventKind(StrEnum):
    """Health events of the instance itself."""

    LOOP_RESTARTED = "loop_restarted"
    MESSAGE_DEAD_LETTERED = "message_dead_lettered"
    """An outbox message could not be published and was moved to the dead letters
    (``message_id`` names it; ``detail`` says why); the messages behind it go on."""
    STORAGE_UNWRITABLE = "storage_unwritable"
    """The state disk refused a write (full, failing, read-only): results, alerts and events
    wait in memory, up to a bound, and are written and published when it takes writes
    again. Delivered then too, since it goes through the outbox like every event."""
    STORAGE_RESTORED = "storage_restored"
    """The state disk takes writes again; ``detail`` says how many waited and were lost."""
    WRITES_LOST = "writes_lost"
    """Writes were lost because more waited for the disk than the bound allows; ``detail``
    counts them by kind (result, alert, event, journal, history, attached)."""
    EVIDENCE_NOT_KEPT = "evidence_not_kept"
    """A risky segment's clip could not be kept; the alert (``message_id``, when one was
    sent) went out with ``evidence: null``."""


@dataclass(frozen=True, slots=True)
class InstanceEvent:
    """One health event of this instance, e.g. a background loop that crashed and was
    restarted, or a message moved to the dead letters; ``event_id`` is stable so consumers
    can drop duplicates."""

    instance_id: str
    kind: InstanceEventKind
    at: datetime
    loop: str
    detail: str = ""
    message_id: str | None = None
    """The outbox message a ``message_dead_lettered`` event is about."""

    @property
    def event_id(self) -> str:
        parts = [self.instance_id, self.kind, self.at.isoformat(), self.loop]
        if self.message_id is not None:
            parts.append(self.message_id)
        key = "\x1f".join(parts)
        return "evt-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "instance": self.instance_id,
            "kind": self.kind.value,
            "at": self.at.isoformat(),
            "loop": self.loop,
            "detail": redact(self.detail),
            "message_id": self.message_id,
        }


def instance_payload(instance_id: str, state: str, at: datetime | None) -> dict[str, Any]:
    """The retained availability message of an instance (``at`` is unknown in a Last Will)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "instance": instance_id,
        "state": state,
        "at": at.isoformat() if at else None,
    }
