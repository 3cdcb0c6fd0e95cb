"""Who this daemon is and where it keeps state."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from streamguard.config.base import Section

__all__ = ["InstanceConfig"]


class InstanceConfig(Section):
    id: str = Field(
        "streamguard", pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="Name of this instance."
    )
    state_dir: Path = Field(
        Path("state"),
        description=(
            "Directory for the SQLite database and clips; a relative path is taken under "
            "$STATE_DIRECTORY when systemd sets it."
        ),
    )
    results_keep_days: float = Field(
        90.0,
        gt=0,
        description="Segment results (verdicts) older than this are deleted from the database.",
    )
    shutdown_seconds: float = Field(
        60.0,
        gt=0,
        description="On SIGTERM, how long partial tails may take to be judged before exit.",
    )
