"""How the IMS emulator behaves (``ImsOptions``) and the faults it injects (``ImsFaults``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from streamguard.emulator.ims_answers import ArrayForm

__all__ = ["FAULT_CODES", "ImsFaults", "ImsOptions"]

FAULT_CODES = frozenset(
    {
        "ResourceUnavailable.ModelCallFailed",
        "ResourceUnavailable.InQueueError",
        "InternalError",
        "InternalError.InternalError",
        "UnauthorizedOperation.Unauthorized",
    }
)
"""The service errors IMS spec §7 asks the emulator to inject."""


@dataclass(frozen=True)
class ImsOptions:
    """How the IMS emulator behaves; the defaults are the service's documented limits."""

    keys: Mapping[str, str]
    """SecretId → SecretKey accepted (the AMS emulator's)."""
    tokens: Mapping[str, str] = field(default_factory=dict)
    sync_per_second: float = 100.0
    """ImageModeration calls a second per SecretId; more are RequestLimitExceeded."""
    async_per_second: float = 20.0
    """CreateImageModerationAsyncTask calls a second per SecretId."""
    sync_download: tuple[float, float] = (3.0, 3.0)
    """Seconds for the first download of a FileUrl and for its one retry (sync)."""
    async_download: tuple[float, float] = (15.0, 3.0)
    max_download_bytes: int = 30 * 1024 * 1024
    callback_delay: float = 0.0
    """Seconds between accepting an async task and judging it."""
    callback_attempts: int = 3
    """Deliveries tried per callback (0.5 s apart) until one is answered 2xx."""

    def __post_init__(self) -> None:
        if self.sync_per_second <= 0 or self.async_per_second <= 0:
            raise ValueError("IMS rates must be positive")
        if self.callback_attempts < 1:
            raise ValueError("callback_attempts must be at least 1")


@dataclass
class ImsFaults:
    """Faults and odd shapes of answer, switchable while the emulator runs.

    ``fail_next`` holds error codes (``FAULT_CODES``) the next calls answer with, one each,
    in order: an exact, ordering-proof scenario for tests.
    """

    fail_next: deque[str] = field(default_factory=deque)
    arrays: ArrayForm = "list"
    """How result arrays are sent (``[]``, ``null``, absent) in answers and callbacks."""
    duplicate_callbacks: bool = False
    """Deliver every async result twice (the receiver must de-duplicate on DataId)."""
    wrapped_callbacks: bool = False
    """Wrap callback bodies as ``{"Response": {...}}`` like an API answer."""

    def __post_init__(self) -> None:
        unknown = set(self.fail_next) - FAULT_CODES
        if unknown:
            raise ValueError(f"not injectable IMS error codes: {sorted(unknown)}")

    def take(self) -> str | None:
        """The error code the next call answers with, if one is queued."""
        return self.fail_next.popleft() if self.fail_next else None
