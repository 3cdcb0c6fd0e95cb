"""TC3-HMAC-SHA256 request signing (spec §2) and the callback ``X-Signature`` (spec §4.4).

Used both ways: the client signs what it sends, the emulator rebuilds the signature of
what it received. The body is signed byte for byte, so callers serialize once and send
exactly the bytes they signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "ALGORITHM",
    "Authorization",
    "Credentials",
    "authorization_header",
    "callback_signature",
    "canonical_request",
    "parse_authorization",
    "signature",
    "utc_date",
]

ALGORITHM = "TC3-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A SecretId/SecretKey pair and an optional STS token; secrets never appear in repr."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The UTC date of a Unix timestamp, as the credential scope needs it (never local time)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload: bytes,
) -> str:
    """The CanonicalRequest of §2.1 step 1; ``headers`` keys are matched case-insensitively."""
    lowered = {name.lower(): value for name, value in headers.items()}
    names = sorted(name.lower() for name in signed_headers)
    canonical_headers = "".join(
        f"{name}:{lowered.get(name, '').strip().lower()}\n" for name in names
    )
    return "\n".join(
        [method.upper(), uri, query, canonical_headers, ";".join(names), _sha256_hex(payload)]
    )


def signature(secret_key: str, service: str, timestamp: int, request: str) -> str:
    """The lowercase hex Signature of §2.1 steps 2-4 for a CanonicalRequest."""
    date = utc_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [ALGORITHM, str(timestamp), scope, _sha256_hex(request.encode("utf-8"))]
    )
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(k_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(
    credentials: Credentials,
    service: str,
    timestamp: int,
    headers: Mapping[str, str],
    body: bytes,
    signed_headers: Sequence[str] = ("content-type", "host"),
) -> str:
    """The ``Authorization`` header value for a ``POST /`` with these headers and body."""
    names = sorted(name.lower() for name in signed_headers)
    request = canonical_request("POST", "/", "", headers, names, body)
    sig = signature(credentials.secret_key, service, timestamp, request)
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    return (
        f"{ALGORITHM} Credential={credentials.secret_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={sig}"
    )


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of a received ``Authorization`` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[a-z0-9]+)/tc3_request,\s*SignedHeaders=(?P<headers>[a-z0-9;\-]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def parse_authorization(value: str) -> Authorization | None:
    """Parse a TC3 ``Authorization`` header; None when it is not well formed."""
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        return None
    return Authorization(
        secret_id=match["id"],
        date=match["date"],
        service=match["service"],
        signed_headers=tuple(match["headers"].split(";")),
        signature=match["sig"],
    )


def callback_signature(seed: str, body: bytes) -> str:
    """``X-Signature`` of a callback: SHA-256 of seed + raw body (a plain hash, not an HMAC)."""
    return _sha256_hex(seed.encode("utf-8") + body)
