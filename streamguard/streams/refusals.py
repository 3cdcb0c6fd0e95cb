"""Why the daemon refuses to attach or change a stream (the API maps each to a status)."""

from __future__ import annotations

from streamguard.core.errors import StreamGuardError

__all__ = ["InvalidSource", "ShuttingDown", "StreamConflict", "UnknownProfile"]


class StreamConflict(StreamGuardError):
    """An attach names a stream id that is already attached."""


class UnknownProfile(StreamGuardError):
    """A stream names a policy profile the config does not define."""


class InvalidSource(StreamGuardError):
    """A stream's URL cannot be parsed at all."""


class ShuttingDown(StreamGuardError):
    """The daemon is stopping and takes no new streams."""
