"""The policy proxy: FFmpeg's HTTP(S) goes through it, and it connects only where allowed.

FFmpeg resolves host names and follows redirects, HLS segment and key URLs by itself, so a
check of the stream's URL alone would not hold. With its ``http_proxy`` option set, FFmpeg
sends every HTTP request of the source to this proxy instead, as ``GET http://host/path``,
and tunnels every HTTPS connection through ``CONNECT host:443``. The proxy resolves the
host (:meth:`AddressPolicy.resolve`), checks every address, and connects to the checked
address itself; a denied one is answered ``403`` without any connection, and the source
is told (:attr:`PolicyProxy.denied`), which turns whatever FFmpeg makes of the 403 into
:class:`~streamguard.ingest.addresses.AddressNotAllowed`.

One proxy per source, on the source's event loop, listening on an ephemeral loopback port.
Relaying costs little: the bytes of a compressed audio stream, a few KB a second; the
figure is in ``docs/benchmarks.md``. It is one request per connection as FFmpeg opens them:
a kept-alive connection FFmpeg reuses goes to the same host and port (FFmpeg reuses one only
then), and so to the address already checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from streamguard.core.errors import SourceError
from streamguard.ingest.addresses import AddressNotAllowed, AddressPolicy, IPAddress

__all__ = ["PolicyProxy", "pipe_both"]

log = logging.getLogger(__name__)

_HEAD_LIMIT = 64 * 1024  # FFmpeg's requests are a URL (4 KB at most) and a few headers
_CHUNK = 64 * 1024
_FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_TUNNEL_OPEN = b"HTTP/1.1 200 Connection established\r\n\r\n"


class _Refused(Exception):
    """A request the proxy will not forward; ``answer`` is what the client is told."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer


class PolicyProxy:
    """An HTTP proxy on 127.0.0.1 that only connects to addresses ``policy`` allows.

    ``async with PolicyProxy(policy, stream_id=…, connect_timeout=…) as proxy``, then give
    FFmpeg ``http_proxy=proxy.url``. ``denied`` is set when a target was refused, and
    ``failure`` says why the last upstream connection could not be made (``Connection
    refused``): the source reports them instead of the 403 and 502 FFmpeg saw. Both are
    read and cleared by the reader thread (:meth:`begin`); plain attribute writes are atomic.
    """

    def __init__(self, policy: AddressPolicy, *, stream_id: str, connect_timeout: float) -> None:
        self._policy = policy
        self._stream_id = stream_id
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.denied = False
        self.failure: str | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        _no_bypass()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)
        await self._server.wait_closed()

    def begin(self) -> None:
        """A new connection attempt of the source: forget what the last one met."""
        self.denied = False
        self.failure = None

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.set_name(f"stream[{self._stream_id}].proxy")
        self._handlers.add(task)
        try:
            await self._relay(client_in, client)
        except _Refused as refused:
            with contextlib.suppress(OSError):
                client.write(refused.answer)
                await client.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or sent something that is not HTTP: just close
        except asyncio.CancelledError:
            # Only __aexit__ cancels a handler, and waits for it. Ending quietly matters on
            # Python 3.11, whose stream server logs a cancelled handler as an error.
            pass
        finally:
            self._handlers.discard(task)
            client.close()

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
            await pipe_both(self._stream_id, (client_in, upstream), (upstream_in, client))
        finally:
            upstream.close()

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve, check every address, connect to the first checked one that answers."""
        try:
            addresses = await asyncio.to_thread(self._policy.resolve, host, port)
        except AddressNotAllowed:
            self.denied = True
            log.warning(
                "stream %s: the address policy refused a connection to %s:%d",
                self._stream_id,
                host,
                port,
            )
            raise _Refused(_FORBIDDEN) from None
        except SourceError as exc:
            self.failure = str(exc)
            raise _Refused(_BAD_GATEWAY) from exc
        return await self._open(addresses, port)

    async def _open(
        self, addresses: list[IPAddress], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reason = "no address to connect to"
        for address in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    return await asyncio.open_connection(str(address), port, limit=_CHUNK)
            except TimeoutError:
                reason = "timed out"
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
        self.failure = reason
        raise _Refused(_BAD_GATEWAY)


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


Watch = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def pipe_both(
    stream_id: str,
    up: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    down: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    *,
    watch: Watch | None = None,
) -> None:
    """Copy ``up`` (client to server) and ``down`` (server to client) until either side
    closes; the caller closes both. ``watch`` reads ``down`` first, as long as it wants."""

    async def downwards() -> None:
        if watch is not None:
            await watch(*down)
        await _copy(*down)

    name = f"stream[{stream_id}].relay"
    tasks = {
        asyncio.create_task(_copy(*up), name=f"{name}.up"),
        asyncio.create_task(downwards(), name=f"{name}.down"),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()


def _no_bypass() -> None:
    """FFmpeg skips its proxy for hosts listed in ``$no_proxy``: such a list would let a
    source around the policy, so it is dropped from this process's environment (before the
    source's first connection, and said in the log)."""
    if os.environ.pop("no_proxy", None) is not None:
        log.warning("ignoring $no_proxy: every source connection goes through the address policy")
