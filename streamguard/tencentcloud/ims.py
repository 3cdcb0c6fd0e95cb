"""``ImsClient``: Tencent Cloud IMS 2020-12-29 (``ImageModeration``) over the AMS client's
transport, TC3-signed for service ``ims`` (``shared/spec/ims-2020-12-29.md``).

IMS and AMS share everything but the service name in the credential scope (same version,
envelope, errors and retry advice), so this is the AMS client with its signature made for
``ims``: the same rate limiting, timeouts, bounded retries and defensive reading. Errors are
the same ``AmsError`` family (``code`` is IMS's, e.g.
``InvalidParameter.ImageSizeTooSmall``). ImageModeration changes no state, so it is retried
like a read: a retry after an unknown outcome costs one more billed call, never a wrong
result.
"""

from __future__ import annotations

from typing import Any

from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.signing import authorization_header

__all__ = ["IMS_ENDPOINT", "IMS_REQUESTS_PER_SECOND", "IMS_SERVICE", "ImsClient"]

IMS_SERVICE = "ims"
IMS_ENDPOINT = "https://ims.tencentcloudapi.com"
IMS_REQUESTS_PER_SECOND = 100.0
"""ImageModeration's default limit per account (the async task API has 20)."""


class ImsClient(AmsClient):
    """Async client for IMS; use as ``async with ImsClient(endpoint, credentials, ...)``
    (the keyword arguments of :class:`AmsClient`; send a ``region``: IMS requires one)."""

    async def image_moderation(self, params: dict[str, Any]) -> dict[str, Any]:
        """ImageModeration: one picture (``FileContent`` base64 or ``FileUrl``) judged within
        the call; the answer's fields (arrays may be null or absent: see the spec, 6.2)."""
        return await self.call("ImageModeration", params)

    def _headers(self, action: str, body: bytes) -> dict[str, str]:
        headers = super()._headers(action, body)
        del headers["Authorization"]
        headers["Authorization"] = authorization_header(
            self._credentials, IMS_SERVICE, int(headers["X-TC-Timestamp"]), headers, body
        )
        return headers
