"""AMS errors: the envelope's Code/Message/RequestId as typed exceptions.

::

    AmsError (streamguard.core.errors)     an error envelope, or a call that could not complete
    ├── AmsInvalidResponse            an answer that could not be read (a shape no lenient
    │                                 reading accepts, or a body over the size cap); the
    │                                 request was carried out, so a Create's outcome is unknown
    └── AmsRetryableError             worth retrying: throttling, server trouble, network
        └── AmsNetworkError           no answer: ``sent`` says whether the request may have
                                      reached the server (then its outcome is unknown)

Codes are retried by family, because the service adds sub-codes over time
(``RequestLimitExceeded.UinLimitExceeded`` …): see ``retryable`` and ``unprocessed``.
"""

from __future__ import annotations

from streamguard.core.errors import AmsError

__all__ = [
    "RETRYABLE_FAMILIES",
    "UNPROCESSED_FAMILIES",
    "AmsError",
    "AmsInvalidResponse",
    "AmsNetworkError",
    "AmsRetryableError",
    "error_for",
    "retryable",
    "unprocessed",
]

UNPROCESSED_FAMILIES = ("RequestLimitExceeded", "AuthFailure.SignatureExpire")
"""Code families that mean the request was refused before anything was done (a signature
that expired is retried with a fresh timestamp: every attempt re-signs)."""

RETRYABLE_FAMILIES = (*UNPROCESSED_FAMILIES, "InternalError", "ServiceUnavailable")
"""Code families worth another attempt. The server errors leave a Create's outcome unknown,
so a Create meeting them is reconciled, not resent."""

_UNAVAILABLE = "ResourceUnavailable"
"""Retried too, for reads only: "the resource is unavailable" may be temporary, but it may
also be that a Create was half done, so a Create meeting it is reconciled, not resent."""


def _in_family(code: str, families: tuple[str, ...]) -> bool:
    return any(code == family or code.startswith(family + ".") for family in families)


def unprocessed(code: str) -> bool:
    """True when ``code`` means the request was refused before the server acted on it."""
    return _in_family(code, UNPROCESSED_FAMILIES)


def retryable(code: str) -> bool:
    """True when another attempt may not meet ``code`` (throttling, server trouble)."""
    return _in_family(code, (*RETRYABLE_FAMILIES, _UNAVAILABLE))


class AmsInvalidResponse(AmsError):
    """An answer that could not be read: the call was carried out, its answer is lost."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__("InvalidResponse", message, request_id)


class AmsRetryableError(AmsError):
    """An AMS error that another attempt may not meet (throttling, server trouble)."""

    @property
    def unprocessed(self) -> bool:
        """True when the server refused the request before acting on it."""
        return unprocessed(self.code)


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
    if retryable(code):
        return AmsRetryableError(code, message, request_id)
    return AmsError(code, message, request_id)
