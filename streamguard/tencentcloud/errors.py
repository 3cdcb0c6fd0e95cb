"""AMS errors: the envelope's Code/Message/RequestId as typed exceptions.

::

    AmsError (streamguard.core.errors)     an error envelope, or a call that could not complete
    └── AmsRetryableError             worth retrying: throttling, server trouble, network
        └── AmsNetworkError           no answer: ``sent`` says whether the request may have
                                      reached the server (then its outcome is unknown)
"""

from __future__ import annotations

from streamguard.core.errors import AmsError

__all__ = [
    "RETRYABLE_CODES",
    "UNPROCESSED_CODES",
    "AmsError",
    "AmsNetworkError",
    "AmsRetryableError",
    "error_for",
]

UNPROCESSED_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
        "RequestLimitExceeded.IPLimitExceeded",
        "RequestLimitExceeded.UinLimitExceeded",
        "AuthFailure.SignatureExpire",  # retried with a fresh timestamp: every attempt re-signs
    }
)
"""Retryable codes that mean the request was refused before anything was done."""

RETRYABLE_CODES = UNPROCESSED_CODES | {
    "InternalError",
    "InternalError.InternalError",
    "ServiceUnavailable",
}
"""Codes worth another attempt; the two server errors leave a Create's outcome unknown."""


class AmsRetryableError(AmsError):
    """An AMS error that another attempt may not meet (throttling, server trouble)."""

    @property
    def unprocessed(self) -> bool:
        """True when the server refused the request before acting on it."""
        return self.code in UNPROCESSED_CODES


class AmsNetworkError(AmsRetryableError):
    """No usable answer: connection failed, timed out, or the server sent a non-envelope."""

    def __init__(self, code: str, message: str, *, sent: bool) -> None:
        super().__init__(code, message, None)
        self.sent = sent

    @property
    def unprocessed(self) -> bool:
        """True when the request never reached the server."""
        return not self.sent


def error_for(code: str, message: str, request_id: str | None) -> AmsError:
    """The exception for an error envelope: retryable codes get ``AmsRetryableError``."""
    if code in RETRYABLE_CODES:
        return AmsRetryableError(code, message, request_id)
    return AmsError(code, message, request_id)
