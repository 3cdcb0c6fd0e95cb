"""Who may call what: the API token, the read-only viewer token, and signed evidence URLs.

    public paths (health, metrics, OpenAPI, the console's pages and files) → no token
    /v1/evidence/{segment_id}?expires=…&sig=…                             → the signature
    Authorization: Bearer <api token>                                      → everything
    Authorization: Bearer <viewer token>                                   → GET and HEAD

The console's pages hold no data: their script fetches it with the token the person typed,
kept in the tab's ``sessionStorage``. An ``<audio>`` element cannot send that header, so
evidence is also reachable through a URL signed by the daemon that expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from aiohttp import web

from streamguard.api.replies import problem

__all__ = ["PUBLIC", "Access", "EvidenceUrls", "Role", "auth_middleware", "role_of"]

PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
CONSOLE_PREFIX = "/console"
EVIDENCE_PREFIX = "/v1/evidence/"
READ_METHODS = frozenset({"GET", "HEAD"})
ROLE_KEY = web.RequestKey("role", str)


class Role(StrEnum):
    """What a caller may do."""

    OPERATOR = "operator"
    """The API token: read and change."""
    VIEWER = "viewer"
    """The viewer token: read only."""
    SIGNED = "signed"
    """A signed evidence URL: that one clip, until it expires."""


@dataclass(frozen=True, slots=True)
class EvidenceUrls:
    """Signs and checks evidence URLs: HMAC-SHA256 of the segment id and the expiry.

    The key is random per process: a URL outlives neither its ``ttl`` nor a restart, and the
    console asks for fresh ones each time it shows an incident.
    """

    ttl: float = 3600.0
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    clock: Callable[[], float] = time.time

    def url(self, segment_id: str) -> str:
        """The signed path (with its query) of a segment's evidence clip."""
        expires = int(self.clock() + self.ttl)
        sig = self._sign(segment_id, expires)
        return f"{EVIDENCE_PREFIX}{quote(segment_id, safe='')}?expires={expires}&sig={sig}"

    def valid(self, segment_id: str, expires: str, sig: str) -> bool:
        """Whether ``sig`` signs this segment until ``expires``, and that is still ahead."""
        # ASCII digits only, and few: "²".isdigit() is true and int() of 5,000 digits raises.
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            return False
        if int(expires) < self.clock():
            return False
        expected = self._sign(segment_id, int(expires)).encode("ascii")
        # Compared as bytes: a non-ASCII str makes compare_digest raise.
        return hmac.compare_digest(expected, sig.encode("utf-8", "surrogatepass"))

    def _sign(self, segment_id: str, expires: int) -> str:
        message = f"{segment_id}\n{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Access:
    """The tokens the API accepts (None: not configured) and the evidence URL signer."""

    token: str | None
    viewer_token: str | None = None
    evidence: EvidenceUrls = field(default_factory=EvidenceUrls)

    def role(self, authorization: str) -> Role | None:
        """The role an ``Authorization`` header grants, if any."""
        # Compared as bytes: a header aiohttp decoded with surrogateescape (not UTF-8) must
        # be a plain 401, not an UnicodeEncodeError.
        given = authorization.encode("utf-8", "surrogatepass")
        if self.token is not None and hmac.compare_digest(given, _bearer(self.token)):
            return Role.OPERATOR
        viewer = self.viewer_token
        if viewer is not None and hmac.compare_digest(given, _bearer(viewer)):
            return Role.VIEWER
        return None


def _bearer(token: str) -> bytes:
    return b"Bearer " + token.encode()


def role_of(request: web.Request) -> Role:
    """The role the middleware granted this request."""
    return Role(request[ROLE_KEY])


def _is_public(path: str) -> bool:
    return path in PUBLIC or path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def _signed(access: Access, request: web.Request) -> bool | None:
    """None: not a signed evidence request; else whether its signature holds."""
    if not request.path.startswith(EVIDENCE_PREFIX) or "sig" not in request.query:
        return None
    segment_id = request.match_info.get("segment_id", "")
    query = request.query
    return request.method in READ_METHODS and access.evidence.valid(
        segment_id, query.get("expires", ""), query["sig"]
    )


def auth_middleware(access: Access) -> Any:
    """The middleware that lets a request through by path, signature or token."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if _is_public(request.path):
            return await handler(request)
        signed = _signed(access, request)
        if signed is not None:
            if not signed:
                return problem(403, "bad_signature", "the evidence URL is wrong or expired")
            request[ROLE_KEY] = Role.SIGNED.value
            return await handler(request)
        if access.token is None:
            return problem(401, "no_token_configured", "the API has no token: set api-token")
        role = access.role(request.headers.get("Authorization", ""))
        if role is None:
            return problem(401, "unauthorized", "missing or wrong bearer token")
        if role is Role.VIEWER and request.method not in READ_METHODS:
            return problem(403, "read_only", "the viewer token may only read")
        request[ROLE_KEY] = role.value
        return await handler(request)

    return middleware
