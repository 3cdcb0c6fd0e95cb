"""How the emulator behaves (``EmulatorOptions``) and what it saw (``EmulatorStats``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["SLICE_CHOICES", "EmulatorOptions", "EmulatorStats"]

SLICE_CHOICES = (15, 30, 60)
"""The slice lengths the AMS console offers, in seconds."""


@dataclass(frozen=True)
class EmulatorOptions:
    """How the emulator behaves; the defaults are the real service's documented limits."""

    keys: Mapping[str, str]
    """SecretId → SecretKey accepted."""
    tokens: Mapping[str, str] = field(default_factory=dict)
    """SecretId → STS token it must present (X-TC-Token), for temporary credentials."""
    slice_seconds: int = 30
    """The console's slice length (15, 30 or 60 s; AMS default 30)."""
    processing_factor: float = 0.25
    """Seconds of processing per second of audio (AMS: about 4x real time)."""
    requests_per_second: float = 20.0
    """Requests a second per SecretId and action (spec §4.1: 20/s for each documented
    action), unless ``action_rates`` names the action."""
    action_rates: Mapping[str, float] = field(default_factory=dict)
    """Action → requests a second per SecretId, overriding ``requests_per_second``."""
    ondemand_concurrency: int = 10
    """On-demand (AUDIO) tasks judged at once; more wait, oldest first (current SDK docs)."""
    live_concurrency: int = 100
    """LIVE_AUDIO tasks running at once; more are refused (RequestLimitExceeded)."""
    full_callbacks: bool = False
    """Call back for every slice, not only those that hit."""
    language: str = ""
    """The language each slice with speech is reported in (``LanguageResults``): a label
    such as ``cmn`` or ``English``; ``auto`` = the engine transcript's language; "" = none."""
    live_reconnects: int = 16
    """A live stream lost this many times in a row ends its task (AMS: 16 for network
    failures)."""
    download_timeout: float = 10.0
    max_download_bytes: int = 500 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.slice_seconds not in SLICE_CHOICES:
            raise ValueError(f"slice_seconds must be 15, 30 or 60, got {self.slice_seconds}")
        if not self.keys:
            raise ValueError("the emulator needs at least one SecretId/SecretKey pair")


@dataclass
class EmulatorStats:
    """What the emulator saw: for tests and the benchmark."""

    calls: Counter[str] = field(default_factory=Counter)
    """Requests that reached an action (after auth), by action, faults included."""
    handled: Counter[str] = field(default_factory=Counter)
    """Requests an action actually carried out, by action."""
    tasks_by_data_id: Counter[str] = field(default_factory=Counter)
    """Tasks created per DataId: more than one is a re-submission (billed again)."""
    billed_seconds: float = 0.0
    """Audio judged (what AMS bills), across all tasks and sync calls."""
    callbacks: int = 0
