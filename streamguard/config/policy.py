"""Policy profiles: which verdicts become alerts."""

from __future__ import annotations

from pydantic import Field

from streamguard.config.base import Section

__all__ = ["ProfileConfig"]


class ProfileConfig(Section):
    biz_type: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_]{3,32}$",
        description="AMS BizType this profile maps to (3-32 of letters, digits, _).",
    )
