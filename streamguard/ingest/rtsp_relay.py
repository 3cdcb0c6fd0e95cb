"""The RTSP relay: an RTSP source's one connection, held to the address policy redirects and all.

Pinning the checked address in the URL is not enough for RTSP: FFmpeg follows a ``3xx``
answer to OPTIONS, DESCRIBE or SETUP to whatever ``Location`` names, resolving it itself. So
FFmpeg connects to this relay on loopback instead (``rtsp://127.0.0.1:PORT/room``), and the
relay connects to the address the guard checked (:meth:`RtspRelay.aim`). Until the media
flows (the first interleaved ``$`` frame) it reads the server's answers: a redirect's
``Location`` is resolved and checked, and rewritten to come back through the relay, aimed
at the checked address; a denied one ends the connection (:attr:`RtspRelay.denied`). After
that it only copies bytes: FFmpeg follows no redirect once playing, and RTP over the
interleaved TCP connection (``rtsp_transport=tcp``) is all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from urllib.parse import urlsplit, urlunsplit

from streamguard.core.errors import SourceError
from streamguard.ingest.addresses import AddressNotAllowed, AddressPolicy, IPAddress
from streamguard.ingest.relay import Relay, UpstreamFailed, pipe_both

__all__ = ["RtspRelay"]

log = logging.getLogger(__name__)

_MAX_BODY = 1024 * 1024  # an SDP is a few KB
_STATUS = re.compile(rb"^RTSP/\d\.\d (\d{3})")
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_LOCATION = re.compile(rb"\r\nlocation:[ \t]*([^\r\n]*)", re.IGNORECASE)


class _Ended(Exception):
    """The relayed connection must end here (a denied or unusable redirect)."""


class RtspRelay(Relay):
    """A loopback relay to the checked address of one RTSP source.

    ``async with`` it; :meth:`aim` (reader thread) at the addresses the guard checked, then
    give FFmpeg :meth:`url_for` the stream's URL.
    """

    def __init__(self, policy: AddressPolicy, *, stream_id: str, connect_timeout: float) -> None:
        super().__init__(policy, stream_id=stream_id, connect_timeout=connect_timeout)
        self._upstream: tuple[list[IPAddress], int] = ([], 0)

    def aim(self, addresses: list[IPAddress], port: int) -> None:
        """Where the next connection goes: checked addresses, tried in order."""
        self._upstream = (addresses, port)

    def url_for(self, url: str) -> str:
        """``url`` pointed at the relay (credentials, path and query kept)."""
        parts = urlsplit(url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{self.port}"))

    async def _handle(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        addresses, port = self._upstream
        try:
            upstream_in, upstream = await self._open(addresses, port)
        except UpstreamFailed:
            return  # FFmpeg sees the connection end; the guard tells why (failure)
        try:
            await pipe_both(
                self._stream_id, (client_in, upstream), (upstream_in, client), watch=self._watch
            )
        except _Ended:
            pass  # a denied or unusable redirect: the connection ends here
        finally:
            upstream.close()

    async def _watch(self, upstream_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        """The server's answers until the media flows, each redirect checked and re-aimed."""
        while (first := await upstream_in.readexactly(1)) != b"$":
            head = first + await upstream_in.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            size = int(length.group(1)) if length else 0
            if size > _MAX_BODY:
                raise _Ended("answer too large")
            body = await upstream_in.readexactly(size)
            status = _STATUS.match(head)
            if status and status.group(1).startswith(b"3"):
                head = await self._redirected(head)
            client.write(head + body)
            await client.drain()
        client.write(first)

    async def _redirected(self, head: bytes) -> bytes:
        found = _LOCATION.search(head)
        if found is None:
            return head  # FFmpeg has nowhere to go
        location = found.group(1).decode("latin-1").strip()
        parts = urlsplit(location)
        host, port = parts.hostname, _port(location)
        if parts.scheme.lower() != "rtsp" or not host or port is None:
            raise _Ended("unusable redirect")
        try:
            addresses = await asyncio.to_thread(self._policy.resolve, host, port)
        except AddressNotAllowed:
            self.denied = True
            log.warning(
                "stream %s: the address policy refused an RTSP redirect to %s:%d",
                self._stream_id,
                host,
                port,
            )
            raise _Ended("denied") from None
        except SourceError as exc:
            self.failure = str(exc)
            raise _Ended(str(exc)) from exc
        self.aim(addresses, port)
        rewritten = self.url_for(location).encode("latin-1")
        return head[: found.start(1)] + rewritten + head[found.end(1) :]


def _port(url: str) -> int | None:
    with contextlib.suppress(ValueError):
        return urlsplit(url).port or 554
    return None
