"""``Profiles``: the policy profiles in force, swapped in one step when the config reloads.

Everything that judges by profile (outcomes, incidents, late verdicts, stream checks) holds
the same ``Profiles`` object and reads it at each use, so a reload is one ``replace`` and
never half applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig

__all__ = ["DEFAULT_PROFILE", "Profiles"]

DEFAULT_PROFILE = "default"


class Profiles(Mapping[str, ProfileConfig]):
    """A read-only mapping of profile name to profile whose contents ``replace`` swaps."""

    def __init__(self, profiles: Mapping[str, ProfileConfig]) -> None:
        self._current = dict(profiles)

    def __getitem__(self, name: str) -> ProfileConfig:
        return self._current[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def replace(self, profiles: Mapping[str, ProfileConfig]) -> None:
        """Put ``profiles`` in force, all at once."""
        self._current = dict(profiles)

    def biz_type(self, stream: StreamConfig) -> str | None:
        """The AMS BizType of the stream's profile."""
        return self._current[stream.profile].biz_type

    def image_biz_type(self, stream: StreamConfig) -> str | None:
        """The IMS BizType of the stream's profile (None: the image engine's own)."""
        return self._current[stream.profile].image_biz_type

    def fallback(self) -> str:
        """The profile for a stream whose own profile is gone: ``default``, else the first."""
        return DEFAULT_PROFILE if DEFAULT_PROFILE in self._current else min(self._current)
