"""``ConsoleSetup``: what the incident, evidence and console routes need from the daemon."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamguard.api.evidence import SharedClipSource
from streamguard.config import Config
from streamguard.moderation.evidence import EvidenceStore
from streamguard.state.db import Database
from streamguard.state.incidents import IncidentHistory, IncidentStore

__all__ = ["ConsoleSetup"]


@dataclass(frozen=True, slots=True)
class ConsoleSetup:
    """The incident history, where evidence clips are kept, and the console's access."""

    incidents: IncidentStore
    evidence_dir: Path
    """Only clips inside it are served."""
    viewer_token: str | None = None
    evidence_url_ttl: float = 3600.0
    shared_clips: SharedClipSource | None = None
    """Fleet mode: clips kept by any instance, served when this one has no file of it."""
    evidence_url_key: bytes | None = None
    """Fleet mode: the fleet's key for signed evidence URLs (default: one per process)."""

    @classmethod
    def of(
        cls,
        config: Config,
        db: Database,
        incidents: IncidentStore | None = None,
        *,
        shared_clips: SharedClipSource | None = None,
        evidence_url_key: bytes | None = None,
    ) -> ConsoleSetup:
        """The setup ``config`` describes, on the daemon's database (the incident history:
        ``incidents`` when given, fleet mode's shared one, with its shared clips and URL
        key)."""
        viewer = config.api.viewer_token
        return cls(
            incidents=incidents or IncidentHistory(db),
            evidence_dir=EvidenceStore.from_config(config.evidence, config.state_path()).directory,
            viewer_token=viewer.get_secret_value() if viewer is not None else None,
            evidence_url_ttl=config.api.evidence_url_ttl,
            shared_clips=shared_clips,
            evidence_url_key=evidence_url_key,
        )
