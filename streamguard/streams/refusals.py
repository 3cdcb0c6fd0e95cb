"""Why the daemon refuses to attach or change a stream (the API maps each to a status)."""

from __future__ import annotations

from streamguard.core.errors import StreamGuardError

__all__ = ["ChangedMeanwhile", "InvalidSource", "ShuttingDown", "StreamConflict", "UnknownProfile"]


class StreamConflict(StreamGuardError):
    """An attach names a stream id that is already attached."""


class ChangedMeanwhile(StreamConflict):
    """A change merged over a config that was written again since it was read (another
    PATCH through another instance): nothing kept; read the stream again and retry."""

    code = "conflict"


class UnknownProfile(StreamGuardError):
    """A stream names a policy profile the config does not define."""


class InvalidSource(StreamGuardError):
    """A stream's URL cannot be parsed at all."""


class ShuttingDown(StreamGuardError):
    """The daemon is stopping and takes no new streams."""
