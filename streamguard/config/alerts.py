"""Where the evidence of risky segments is kept, and for how long."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from streamguard.config.base import Section

__all__ = ["EvidenceConfig"]


class EvidenceConfig(Section):
    """Clips of risky segments, with their SHA-256 and transcript, under a retention policy."""

    directory: Path | None = Field(
        None, description="Where evidence is kept; defaults to <instance.state_dir>/evidence."
    )
    keep_days: float = Field(30.0, gt=0, description="Evidence older than this is deleted.")
    max_megabytes: float = Field(
        1024.0, gt=0, description="Disk cap: the oldest evidence is deleted beyond it."
    )
    base_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="URL under which the directory is served; alerts then carry a clip URL.",
    )
