"""Checks a request's TC3 signature the way Tencent Cloud does, answering with its AuthFailure
codes. The service name is a parameter: every TC3 API signs the same way."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from streamguard.tencentcloud.signing import (
    Authorization,
    canonical_request,
    parse_authorization,
    signature,
    utc_date,
)

__all__ = ["MAX_SKEW_SECONDS", "AuthFailure", "verify"]

MAX_SKEW_SECONDS = 300
"""A timestamp more than 5 minutes away from server time is refused (SignatureExpire)."""


class AuthFailure(Exception):
    """The request is not authentic: ``code`` is the error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, str],
    now: float,
    tokens: Mapping[str, str] | None = None,
    *,
    service: str,
) -> str:
    """Return the caller's SecretId, or raise ``AuthFailure`` saying what is wrong.

    ``keys`` maps SecretId to SecretKey; ``tokens`` optionally maps SecretId to the STS
    token it must present; ``service`` is the one the credential scope must name. Signed
    headers are rebuilt from what was received.
    """
    auth, timestamp = _authorization(headers)
    secret_key = keys.get(auth.secret_id)
    if secret_key is None:
        raise AuthFailure(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        )
    if abs(now - timestamp) > MAX_SKEW_SECONDS:
        raise AuthFailure(
            "AuthFailure.SignatureExpire",
            f"Signature expired. Timestamp {timestamp} is more than {MAX_SKEW_SECONDS} s away "
            f"from server time {int(now)}.",
        )
    _check_signature(auth, timestamp, secret_key, service, headers, body)
    required_token = (tokens or {}).get(auth.secret_id)
    if required_token is not None and headers.get("X-TC-Token") != required_token:
        raise AuthFailure("AuthFailure.TokenFailure", "The X-TC-Token is missing or invalid.")
    return auth.secret_id


def _authorization(headers: Mapping[str, str]) -> tuple[Authorization, int]:
    """The parsed Authorization header and X-TC-Timestamp, or InvalidAuthorization."""
    raw = headers.get("Authorization")
    if not raw:
        raise AuthFailure(
            "AuthFailure.InvalidAuthorization", "The Authorization header is missing."
        )
    auth = parse_authorization(raw)
    if auth is None:
        raise AuthFailure(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is not a valid TC3-HMAC-SHA256 authorization.",
        )
    stamp = headers.get("X-TC-Timestamp", "")
    if not stamp.isdigit():
        raise AuthFailure(
            "AuthFailure.InvalidAuthorization", "X-TC-Timestamp must be Unix seconds."
        )
    return auth, int(stamp)


def _check_signature(
    auth: Authorization,
    timestamp: int,
    secret_key: str,
    service: str,
    headers: Mapping[str, str],
    body: bytes,
) -> None:
    """Raise SignatureFailure unless the scope, signed headers and signature are right."""
    if auth.service != service or auth.date != utc_date(timestamp):
        raise AuthFailure(
            "AuthFailure.SignatureFailure",
            f"The credential scope must be <UTC date of X-TC-Timestamp>/{service}/tc3_request.",
        )
    if not {"content-type", "host"} <= set(auth.signed_headers):
        raise AuthFailure(
            "AuthFailure.SignatureFailure", "SignedHeaders must include content-type and host."
        )
    request = canonical_request("POST", "/", "", headers, auth.signed_headers, body)
    expected = signature(secret_key, auth.service, timestamp, request)
    if not hmac.compare_digest(expected, auth.signature):
        raise AuthFailure(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. "
            "Please check your signature is correct.",
        )
