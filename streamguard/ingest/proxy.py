"""The policy proxy: FFmpeg's HTTP(S) goes through it, and it connects only where allowed.

FFmpeg resolves host names and follows redirects, HLS segment and key URLs by itself, so a
check of the stream's URL alone would not hold. With its ``http_proxy`` option set, FFmpeg
sends every HTTP request of the source to this proxy instead, as ``GET http://host/path``,
and tunnels every HTTPS connection through ``CONNECT host:443``. The proxy resolves the
host (:meth:`AddressPolicy.resolve`), checks every address, and connects to the checked
address itself; a denied one is answered ``403`` without any connection, and the source
is told (``denied``), which turns whatever FFmpeg makes of the 403 into
:class:`~streamguard.ingest.addresses.AddressNotAllowed`. An onward connection that fails
is answered ``502`` and its reason kept (``failure``), for the source to report instead.

One proxy per source, on the source's event loop (see :class:`~streamguard.ingest.relay.Relay`).
Once the target is checked and connected, the bytes are relayed transport to transport
(:meth:`~streamguard.ingest.relay.Relay._splice`; the cost is in ``docs/benchmarks.md``). A
kept-alive connection FFmpeg reuses goes to the same host and port (FFmpeg reuses one only
then), and so to the address already checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Self
from urllib.parse import urlsplit

from streamguard.core.errors import SourceError
from streamguard.ingest.addresses import AddressNotAllowed
from streamguard.ingest.relay import Relay, UpstreamFailed

__all__ = ["PolicyProxy"]

log = logging.getLogger(__name__)

_FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_TUNNEL_OPEN = b"HTTP/1.1 200 Connection established\r\n\r\n"


class _Refused(Exception):
    """A request the proxy will not forward; ``answer`` is what the client is told."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer


class PolicyProxy(Relay):
    """An HTTP proxy on 127.0.0.1 that only connects to addresses the policy allows.

    ``async with PolicyProxy(policy, stream_id=…, connect_timeout=…) as proxy``, then give
    FFmpeg ``http_proxy=proxy.url``.
    """

    @property
    def url(self) -> str:
        """The proxy's address, for FFmpeg's ``http_proxy`` option."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        _no_bypass()
        return await super().__aenter__()

    async def _handle(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            await self._relay(client_in, client)
        except _Refused as refused:
            with contextlib.suppress(OSError):
                client.write(refused.answer)
                await client.drain()

    async def _relay(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        head = await client_in.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        method, target, version = _request_line(line)
        if method == "CONNECT":
            host, port = _authority(target)
            upstream_in, upstream = await self._connect(host, port)
            client.write(_TUNNEL_OPEN)
        else:
            url = urlsplit(target)
            if url.scheme.lower() != "http" or not url.hostname:
                raise _Refused(_BAD_REQUEST)
            upstream_in, upstream = await self._connect(url.hostname, url.port or 80)
            path = url.path or "/"
            if url.query:
                path += f"?{url.query}"
            upstream.write(f"{method} {path} {version}\r\n".encode("latin-1") + rest)
        try:
            await self._splice((client_in, client), (upstream_in, upstream))
        finally:
            upstream.close()

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve, check every address, connect to the first checked one that answers."""
        try:
            addresses = await asyncio.to_thread(self._policy.resolve, host, port)
            return await self._open(addresses, port)
        except AddressNotAllowed:
            self.denied = True
            log.warning(
                "stream %s: the address policy refused a connection to %s:%d",
                self._stream_id,
                host,
                port,
            )
            raise _Refused(_FORBIDDEN) from None
        except SourceError as exc:  # the name does not resolve
            self.failure = str(exc)
            raise _Refused(_BAD_GATEWAY) from exc
        except UpstreamFailed as exc:
            raise _Refused(_BAD_GATEWAY) from exc


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _Refused(_BAD_REQUEST)
    return parts[0], parts[1], parts[2]


def _authority(target: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of a CONNECT request."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise _Refused(_BAD_REQUEST)
    return host.strip("[]"), int(port)


def _no_bypass() -> None:
    """FFmpeg skips its proxy for hosts listed in ``$no_proxy``: such a list would let a
    source around the policy, so it is dropped from this process's environment (before the
    source's first connection, and said in the log)."""
    if os.environ.pop("no_proxy", None) is not None:
        log.warning("ignoring $no_proxy: every source connection goes through the address policy")
