"""The one exception tree of streamguard.

Library errors (PyAV, aiohttp, aiomqtt, sqlite3) are converted at the boundary with
``raise ... from exc`` so callers only ever catch these::

    StreamGuardError
    ├── ConfigError              a config file or value is wrong (carries every problem)
    ├── SourceError              a media source could not be read
    │   ├── ProtocolNotAllowed   the URL's protocol is not on the allow-list
    │   └── SourceTimeout        open or read exceeded its timeout, or the source stalled
    ├── EncodeError              a segment could not be encoded
    ├── EngineError              a moderation engine failed on a segment
    │   └── AmsError             the AMS API answered with an error envelope
    └── BusError                 the message bus refused or lost a publish
"""

from __future__ import annotations

__all__ = [
    "AmsError",
    "BusError",
    "ConfigError",
    "ConfigProblem",
    "EncodeError",
    "EngineError",
    "ProtocolNotAllowed",
    "SourceError",
    "SourceTimeout",
    "StreamGuardError",
]

from dataclasses import dataclass


class StreamGuardError(Exception):
    """Root of every error streamguard raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config: where (dotted path) and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ConfigError(StreamGuardError):
    """A config is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SourceError(StreamGuardError):
    """A media source could not be opened or read."""


class ProtocolNotAllowed(SourceError):
    """The URL's protocol is not on the configured allow-list."""

    def __init__(self, protocol: str, allowed: frozenset[str]) -> None:
        self.protocol = protocol
        super().__init__(
            f"protocol {protocol!r} is not allowed (allowed: {', '.join(sorted(allowed))})"
        )


class SourceTimeout(SourceError):
    """Opening or reading a source took longer than its timeout, or it stalled."""


class EncodeError(StreamGuardError):
    """A segment could not be encoded to the configured format."""


class EngineError(StreamGuardError):
    """A moderation engine could not judge a segment."""


class AmsError(EngineError):
    """The AMS API answered with an error envelope."""

    def __init__(self, code: str, message: str, request_id: str | None) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        super().__init__(f"{code}: {message} (RequestId {request_id})")


class BusError(StreamGuardError):
    """A publish to the message bus failed."""
