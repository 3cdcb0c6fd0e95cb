"""How the IMS image engine calls IMS: BizType per profile, sync or async, concurrency."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BIZ_TYPE", "ImsEngineSettings"]

BIZ_TYPE = re.compile(r"^[A-Za-z0-9_]{3,32}$")
"""IMS's BizType: 3-32 letters, digits or underscores."""


@dataclass(frozen=True)
class ImsEngineSettings:
    """The IMS image engine's settings (the rate limits are the ``ImsClient``'s).

    ``biz_types`` maps a policy profile's name to the IMS BizType (the console policy) its
    pictures are judged under; a profile not listed, or no profile, uses ``biz_type``; none
    at all is the account's default policy.
    """

    biz_type: str | None = None
    biz_types: Mapping[str, str] = field(default_factory=dict)
    mode: Literal["sync", "async"] = "sync"
    """sync: one ImageModeration per picture, the answer in the call; async:
    CreateImageModerationAsyncTask per picture, the answer called back to ``callback_url``."""
    max_in_flight: int = 8
    """Pictures being judged at once (the client's limiters pace the calls themselves)."""
    callback_deadline: float = 60.0
    """async: seconds to wait for a picture's callback before it is judged failed."""
    jpeg_quality: int = 4
    """MJPEG quantiser of the JPEG a picture is sent as (2 best … 31 worst)."""

    def __post_init__(self) -> None:
        for where, value in [("biz_type", self.biz_type), *self.biz_types.items()]:
            if value is not None and not BIZ_TYPE.match(value):
                raise ValueError(
                    f"IMS BizType for {where!r} must be 3-32 letters, digits or _: {value!r}"
                )
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.callback_deadline <= 0:
            raise ValueError("callback_deadline must be positive")
        if not 2 <= self.jpeg_quality <= 31:
            raise ValueError("jpeg_quality must be within 2..31")

    def biz_type_for(self, profile: str | None) -> str | None:
        """The BizType of ``profile``'s pictures."""
        if profile is not None and profile in self.biz_types:
            return self.biz_types[profile]
        return self.biz_type
