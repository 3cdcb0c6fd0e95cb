"""The RTSP relay: an RTSP source's one connection, held to the address policy redirects and all.

Pinning the checked address in the URL is not enough for RTSP: FFmpeg follows a ``3xx``
answer to OPTIONS, DESCRIBE or SETUP to whatever ``Location`` names, resolving it itself. So
FFmpeg connects to this relay on loopback instead (``rtsp://127.0.0.1:PORT/room``), and the
relay connects to the address the guard checked (:meth:`RtspRelay.aim`). For the whole life
of the connection it reads the server's answers exactly as FFmpeg's ``ff_rtsp_read_reply``
does, and hands FFmpeg each one rewritten in plain form, so the two can never disagree:

- a line ends at ``\n``; every ``\r`` is dropped, and a line ends early at a NUL or after
  4095 bytes, as FFmpeg keeps it; an empty line ends the head;
- a ``$`` where a line starts is an interleaved frame (channel, 2-byte big-endian length,
  payload): it is passed on at once, ahead of the answer it interrupted, and a frame FFmpeg
  would not take as media (under 8 bytes) is dropped;
- the status is the second word of a first line whose first word starts with ``RTSP/``,
  whatever the spacing, read as C's ``atoi``; ``Content-Length`` is read as ``strtol``;
- an answer with two ``Location`` or two ``Content-Length`` lines (FFmpeg takes the last,
  many parsers the first) ends the connection as a policy refusal.

A ``3xx`` answer's ``Location`` is resolved and checked, and rewritten to come back through
the relay, aimed at the checked address; a denied one ends the connection
(:attr:`RtspRelay.denied`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

from streamguard.core.errors import SourceError
from streamguard.ingest.addresses import AddressNotAllowed, AddressPolicy, IPAddress
from streamguard.ingest.relay import Relay, UpstreamFailed, pipe_both

__all__ = ["RtspRelay"]

log = logging.getLogger(__name__)

_MAX_BODY = 1024 * 1024  # an SDP is a few KB
_LINE_KEPT = 4095  # what FFmpeg keeps of a line (MAX_URL_SIZE less its NUL)
_SHORTEST_FRAME = 8  # FFmpeg, playing, reads a shorter frame's payload as answer text
_FIRST_WORDS = re.compile(rb"[ \t]*([^ \t]*)[ \t]*([^ \t]*)")
_C_NUMBER = re.compile(rb"[ \t\n\v\f\r]*([+-]?)0*([0-9]*)")


@dataclass(frozen=True, slots=True)
class _Head:
    """An answer's head as FFmpeg reads it: its lines, its status and the lines that count."""

    lines: list[bytes]
    status: int  # 0 for a request from the server (or a head FFmpeg finds no status in)
    lengths: list[int]  # indexes of the Content-Length lines
    locations: list[int]  # indexes of the Location lines

    @classmethod
    def of(cls, lines: list[bytes]) -> _Head:
        status = 0
        if lines:
            first, second = _FIRST_WORDS.match(lines[0]).groups()  # type: ignore[union-attr]
            if first.startswith(b"RTSP/"):
                status = _c_int(second)
        lengths, locations = [], []
        for index, line in enumerate(lines[1:], start=1):
            name = line[:15].lower()
            if name == b"content-length:":
                lengths.append(index)
            elif name.startswith(b"location:"):
                locations.append(index)
        return cls(lines, status, lengths, locations)

    @property
    def length(self) -> int:
        """The body's size, as FFmpeg reads it (none unless positive)."""
        return max(0, _c_int(self.lines[self.lengths[-1]][15:])) if self.lengths else 0

    @property
    def location(self) -> str | None:
        """Where a redirect sends FFmpeg, as FFmpeg reads it; None for any other answer."""
        if not 300 <= self.status < 400 or not self.locations:
            return None
        return self.lines[self.locations[-1]][9:].lstrip(b" \t").decode("latin-1")

    def encode(self) -> bytes:
        """The head in plain form: ``\r\n`` line ends, nothing FFmpeg would not read."""
        return b"".join(line + b"\r\n" for line in self.lines) + b"\r\n"


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
        """Every answer of the server, read as FFmpeg reads it, each redirect checked and
        re-aimed; returns when the server is done sending."""
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                lines = []
                while line := await _line(upstream_in, client):
                    lines.append(line)
                head = _Head.of(lines)
                if len(head.lengths) > 1 or len(head.locations) > 1:
                    self._refuse("an RTSP answer with two Location or Content-Length lines")
                if head.length > _MAX_BODY:
                    raise _Ended("answer too large")
                body = await upstream_in.readexactly(head.length)
                if (location := head.location) is not None:
                    rewritten = await self._redirected(location)
                    head.lines[head.locations[0]] = b"Location: " + rewritten.encode("latin-1")
                client.write(head.encode() + body)
                await client.drain()

    def _refuse(self, what: str) -> NoReturn:
        self.denied = True
        log.warning("stream %s: the address policy refused %s", self._stream_id, what)
        raise _Ended("denied")

    async def _redirected(self, location: str) -> str:
        """``location`` resolved, checked and pointed back at the relay (aimed at it)."""
        parts = urlsplit(location)
        host, port = parts.hostname, _port(location)
        if parts.scheme.lower() != "rtsp" or not host or port is None:
            raise _Ended("unusable redirect")
        try:
            addresses = await asyncio.to_thread(self._policy.resolve, host, port)
        except AddressNotAllowed:
            self._refuse(f"an RTSP redirect to {host}:{port}")
        except SourceError as exc:
            self.failure = str(exc)
            raise _Ended(str(exc)) from exc
        self.aim(addresses, port)
        return self.url_for(location)


async def _line(upstream_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> bytes:
    """The next line of an answer as FFmpeg keeps it (``b""`` ends the head); interleaved
    frames met where the line starts are passed on to ``client`` at once."""
    while (first := await upstream_in.readexactly(1)) in b"\r$":
        if first == b"$":
            head = await upstream_in.readexactly(3)
            payload = await upstream_in.readexactly(int.from_bytes(head[1:], "big"))
            if len(payload) >= _SHORTEST_FRAME:
                client.write(first + head + payload)
                await client.drain()
    if first == b"\n":
        return b""
    line = (first + await upstream_in.readuntil(b"\n"))[:-1].replace(b"\r", b"")
    return line[:_LINE_KEPT].split(b"\0", 1)[0]


def _c_int(text: bytes) -> int:
    """``text`` read by C's ``strtol`` into an ``int``, as FFmpeg does (64-bit Linux)."""
    sign, digits = _C_NUMBER.match(text).groups()  # type: ignore[union-attr]
    value = int(digits[:20] or b"0") * (-1 if sign == b"-" else 1)
    value = max(-(2**63), min(2**63 - 1, value))  # strtol saturates a long
    return (value + 2**31) % 2**32 - 2**31  # and the int it goes into wraps


def _port(url: str) -> int | None:
    with contextlib.suppress(ValueError):
        return urlsplit(url).port or 554
    return None
