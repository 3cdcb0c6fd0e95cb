"""Images fetched from URLs for ``POST /v1/moderate/image``, held to the streams' address
policy (``[ingest.addresses]``, :mod:`~streamguard.ingest.addresses`).

Each fetch goes through a :class:`~streamguard.ingest.proxy.PolicyProxy` of its own, the
one stream sources use: it resolves every host, checks every address and connects only to
a checked one, for the URL and for every redirect (aiohttp follows at most
``max_redirects`` of them, each through the proxy). A denied address anywhere on the way is
:class:`ImageUrlRefused` with :data:`~streamguard.ingest.addresses.POLICY_REFUSAL` and
nothing more. The body is read up to ``max_bytes`` (more is :class:`ImageUrlTooLarge`),
within ``timeout`` seconds for the whole fetch; the server's ``Content-Type`` is not
trusted: what the bytes are is found by decoding them.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from streamguard.config.ingest import AddressPolicyConfig
from streamguard.ingest.addresses import POLICY_REFUSAL, AddressPolicy, literal_address
from streamguard.ingest.proxy import PolicyProxy

__all__ = ["ImageFetcher", "ImageUrlError", "ImageUrlRefused", "ImageUrlTooLarge"]

_SCHEMES = frozenset({"http", "https"})


class ImageUrlError(Exception):
    """The image could not be fetched; the message says why (never the proxy's words)."""


class ImageUrlRefused(ImageUrlError):
    """The URL, or a redirect, names an address the policy denies."""

    def __init__(self) -> None:
        super().__init__(POLICY_REFUSAL)


class ImageUrlTooLarge(ImageUrlError):
    """The body is larger than the fetcher takes."""


@dataclass(frozen=True, slots=True)
class ImageFetcher:
    """Fetches one image URL at a time through the address policy (see the module)."""

    addresses: AddressPolicyConfig
    max_bytes: int
    timeout: float = 3.0
    max_redirects: int = 3
    tls: ssl.SSLContext | None = None
    """How HTTPS servers are verified (None: the system's CAs)."""

    async def fetch(self, url: str) -> bytes:
        """The body at ``url``; :class:`ImageUrlError` when it cannot be had."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
            raise ImageUrlError("the url must be http:// or https:// with a host")
        policy = AddressPolicy.of(self.addresses)
        literal = literal_address(parts.hostname)
        if literal is not None and not policy.allows(literal):
            raise ImageUrlRefused()  # nothing to connect to: said at once
        proxy = PolicyProxy(policy, stream_id="image-url", connect_timeout=self.timeout)
        async with proxy:
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._get(url, proxy.url)
            except TimeoutError as exc:
                raise ImageUrlError(f"no image within {self.timeout:g} s") from exc
            except aiohttp.ClientError as exc:
                if proxy.denied:
                    raise ImageUrlRefused() from None
                raise ImageUrlError(f"cannot fetch the image: {_reason(exc)}") from exc
            except ImageUrlError:
                if proxy.denied:
                    raise ImageUrlRefused() from None
                raise

    async def _get(self, url: str, proxy: str) -> bytes:
        session = aiohttp.ClientSession(trust_env=False, auto_decompress=False)
        async with (
            session,
            session.get(
                url, proxy=proxy, max_redirects=self.max_redirects, ssl=self.tls or True
            ) as response,
        ):
            if response.status != 200:
                raise ImageUrlError(f"the server answered HTTP {response.status}")
            if response.content_length is not None and response.content_length > self.max_bytes:
                raise ImageUrlTooLarge(_too_large(self.max_bytes))
            data = bytearray()
            async for piece in response.content.iter_chunked(64 * 1024):
                data += piece
                if len(data) > self.max_bytes:
                    raise ImageUrlTooLarge(_too_large(self.max_bytes))
            return bytes(data)


def _too_large(limit: int) -> str:
    return f"the image at the url exceeds {limit} bytes"


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    return type(exc).__name__
