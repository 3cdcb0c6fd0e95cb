"""Where each stream runs, as ``/v1/streams`` shows it: which instance owns it, under which
lease, and how it is doing when it runs here.

On one machine (SQLite) every stream runs here and this instance owns it (``LocalPlacements``).
In fleet mode the shared desired set and its leases say who owns each stream
(``streams.fleet.FleetPlacements``): a stream this instance runs carries its live report, one
owned elsewhere or by nobody carries its kept config and its ``placement`` only (its runtime
state lives on its owner: ask that instance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from streamguard.config.streams import StreamConfig
from streamguard.streams.report import StreamReport

__all__ = [
    "LocalPlacements",
    "PendingChange",
    "PlacedStream",
    "Placement",
    "Placements",
    "Where",
]


class Where(StrEnum):
    """Where a stream runs, seen from the instance asked."""

    HERE = "here"
    """This instance holds the stream (its report is the live one)."""
    ELSEWHERE = "elsewhere"
    """Another live instance holds its lease."""
    UNOWNED = "unowned"
    """Nobody holds it: never claimed, released, or its owner's lease expired (the next claim
    of any instance takes it)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Who owns a stream: ``owner`` is the holder (for an expired lease, the last one)."""

    where: Where
    owner: str | None
    generation: int | None = None
    lease_until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The placement fields of a stream's status."""
        return {
            "placement": self.where.value,
            "owner": self.owner,
            "generation": self.generation,
            "lease_until": self.lease_until.isoformat() if self.lease_until else None,
        }


_NOT_HERE: dict[str, Any] = {
    "state": None,
    "last_audio_at": None,
    "reconnects": None,
    "failed_attempts": None,
    "segments": None,
    "outcomes": None,
    "suggestions": None,
    "minutes_moderated": None,
    "minutes_skipped_silent": None,
    "minutes_unjudged": None,
    "last_error": None,
    "audio_track": None,
}
"""The runtime fields of a stream that does not run here: null (its owner has them)."""


@dataclass(frozen=True, slots=True)
class PlacedStream:
    """A stream's status: its live report when it runs here, else its kept config."""

    stream_id: str
    placement: Placement
    report: StreamReport | None = None
    config: dict[str, Any] | None = None
    """The kept config (a stream with no report here)."""
    version: datetime | None = None
    """When the kept config was written (fleet mode): a change merged over ``config`` is
    kept only while it is still this one."""

    def to_json(self) -> dict[str, Any]:
        """The API's view: config, runtime state (null when not here) and placement."""
        if self.report is not None:
            body = self.report.to_json()
        else:
            body = {**(self.config or {}), "id": self.stream_id, **_NOT_HERE}
        return {**body, **self.placement.to_json()}


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A change kept for a stream's owner to apply: the stream as it is now kept, and
    within how long its owner applies it (None: when an instance claims it)."""

    stream: PlacedStream
    within_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        """The stream with its kept config and placement, and what will happen."""
        owner = self.stream.placement.owner
        if self.within_seconds is None or owner is None:
            applies = "when an instance claims the stream (nobody holds it now)"
        else:
            applies = f"by {owner!r} at its next lease turn, within {self.within_seconds:.0f} s"
        change = {
            "state": "pending",
            "applied_by": owner if self.within_seconds is not None else None,
            "within_seconds": self.within_seconds,
            "message": f"the change is kept in the fleet's desired set and applied {applies}",
        }
        return {**self.stream.to_json(), "change": change}


class Placements(Protocol):
    """What the API lists streams with."""

    instance_id: str | None

    async def all(self, reports: list[StreamReport]) -> tuple[list[PlacedStream], bool]:
        """Every stream, with this instance's ``reports`` where they run here; the flag is
        False when the list holds only this instance's streams (the fleet's view is away)."""
        ...

    async def one(self, stream_id: str, report: StreamReport | None) -> PlacedStream | None:
        """One stream (None: no such stream anywhere)."""
        ...

    async def change(
        self, stream: StreamConfig, seen: datetime | None = None
    ) -> PendingChange | None:
        """Keep a changed config of a stream that does not run here, for whoever runs it,
        while its kept config is still the one of version ``seen`` (else ``ChangedMeanwhile``;
        None: no such stream, or no other instance could run it)."""
        ...


class LocalPlacements:
    """One machine: every attached stream runs here, owned by this instance."""

    def __init__(self, instance_id: str | None) -> None:
        self.instance_id = instance_id

    def here(self, report: StreamReport) -> PlacedStream:
        """A stream that runs here."""
        return PlacedStream(report.stream_id, Placement(Where.HERE, self.instance_id), report)

    async def all(self, reports: list[StreamReport]) -> tuple[list[PlacedStream], bool]:
        """The attached streams."""
        return [self.here(report) for report in reports], True

    async def one(self, stream_id: str, report: StreamReport | None) -> PlacedStream | None:
        """The stream when it is attached."""
        return None if report is None else self.here(report)

    async def change(
        self, stream: StreamConfig, seen: datetime | None = None
    ) -> PendingChange | None:
        """Nothing runs elsewhere on one machine."""
        del stream, seen
        return None
