"""What the policy proxy and the RTSP relay share: a loopback server of one source's own that
connects onwards only to checked addresses, and copies bytes both ways.

A :class:`Relay` listens on an ephemeral port of 127.0.0.1, on the source's event loop; each
connection FFmpeg makes to it is served by a named task (``stream[ID].proxy``), cancelled and
awaited when the source ends. ``denied`` and ``failure`` tell the source's reader thread
what the current connection attempt met; plain attribute writes are atomic.

Once a connection's onward target is decided and checked, :meth:`Relay._splice` hands both
sockets to a pair of :class:`_Pump` protocols: what one transport receives is written to the
other from ``data_received``, with no task, read or drain per chunk (copying through the
streams cost the event loop about half as much again on paced live streams, and the whole
process more, ``docs/benchmarks.md``). Backpressure is
the transports': when one side's write buffer passes its high-water mark (64 KiB), reading
from the other side pauses until it is back under the low-water mark, so a reader that stops
reading holds the relay to one buffer and one read (:attr:`Relay.buffered`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from streamguard.ingest.addresses import AddressPolicy, IPAddress

__all__ = ["Relay", "UpstreamFailed", "pipe_both"]

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

_HEAD_LIMIT = 64 * 1024  # requests and answers heads are a URL (4 KB at most) and headers
_CHUNK = 64 * 1024

Watch = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _Accepted(asyncio.StreamReaderProtocol):
    """A connection to the relay, known from the moment it is made, before its handler task
    runs (``Relay.__aexit__`` closes those whose handler never ran)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        accepted: set[asyncio.BaseTransport],
    ) -> None:
        super().__init__(reader, serve)
        self._accepted = accepted
        self._own: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._own = transport
        self._accepted.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._own is not None:
            self._accepted.discard(self._own)
        super().connection_lost(exc)


class UpstreamFailed(Exception):
    """No checked address could be connected to; ``reason`` says why, as FFmpeg would."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Relay(abc.ABC):
    """A loopback server for one source; subclasses serve each connection (``_handle``)."""

    def __init__(self, policy: AddressPolicy, *, stream_id: str, connect_timeout: float) -> None:
        self._policy = policy
        self._stream_id = stream_id
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._pumps: set[_Pump] = set()
        self._accepted: set[asyncio.BaseTransport] = set()
        self.port = 0
        self.denied = False
        """A target was refused by the policy in the current attempt."""
        self.failure: str | None = None
        """Why the last onward connection could not be made (``Connection refused``)."""

    async def __aenter__(self) -> Self:
        def accept() -> _Accepted:
            return _Accepted(asyncio.StreamReader(limit=_HEAD_LIMIT), self._serve, self._accepted)

        self._server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
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
        # A connection whose handler task had not started yet is closed here: that task,
        # cancelled before its first step, would never reach its own ``finally``.
        for transport in list(self._accepted):
            transport.close()

    @property
    def buffered(self) -> int:
        """Bytes the relay holds now, written to a side that has not taken them yet."""
        return sum(pump.buffered for pump in self._pumps)

    def begin(self) -> None:
        """A new connection attempt of the source: forget what the last one met."""
        self.denied = False
        self.failure = None

    @abc.abstractmethod
    async def _handle(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        """Serve one connection from FFmpeg; the client is closed afterwards."""

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.set_name(f"stream[{self._stream_id}].{type(self).__name__.lower()}")
        self._handlers.add(task)
        try:
            await self._handle(client_in, client)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a side went away or sent what is not the protocol: the connection ends
        except asyncio.CancelledError:
            # Only __aexit__ cancels a handler, and waits for it. Ending quietly matters on
            # Python 3.11, whose stream server logs a cancelled handler as an error.
            pass
        finally:
            self._handlers.discard(task)
            client.close()
            # Closed here: a spliced connection's protocol is a pump, which tells _Accepted
            # nothing, so it is forgotten here rather than when it is lost.
            self._accepted.discard(client.transport)

    async def _splice(self, client: Streams, upstream: Streams) -> None:
        """Relay bytes both ways, transport to transport, until either side ends (EOF or
        lost); the caller closes both. Bytes the streams read ahead are passed on first."""
        ended = asyncio.get_running_loop().create_future()
        down, up = _Pump(client[1].transport, ended), _Pump(upstream[1].transport, ended)
        down.peer, up.peer = up, down
        self._pumps |= {down, up}
        try:
            up.send(await down.take_over(client[0]))
            down.send(await up.take_over(upstream[0]))
            for pump in (down, up):  # already past its mark: the transport will not say so
                if pump.buffered > pump.high_water:
                    pump.pause_writing()
            await ended
        finally:
            self._pumps -= {down, up}

    async def _open(
        self, addresses: list[IPAddress], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the first of the checked ``addresses`` that answers, by address."""
        reason = "no address to connect to"
        for address in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    return await asyncio.open_connection(str(address), port, limit=_CHUNK)
            except TimeoutError:
                reason = "timed out"
            except OSError as exc:
                # asyncio words it 'Connect call failed (...)': say it as FFmpeg would.
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
        self.failure = reason
        raise UpstreamFailed(reason)


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


class _Pump(asyncio.Protocol):
    """One side of a spliced connection: what its transport receives goes to its peer's
    transport; its own write buffer, when full, pauses reading from the peer."""

    def __init__(self, transport: asyncio.BaseTransport, ended: asyncio.Future[None]) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._ended = ended
        self.peer: _Pump = self

    @property
    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    @property
    def high_water(self) -> int:
        return self._transport.get_write_buffer_limits()[1]

    async def take_over(self, reader: asyncio.StreamReader) -> bytes:
        """Become the transport's protocol; what ``reader`` holds unread is returned. A side
        already gone (or at EOF with nothing unread) ends the splice."""
        ended = reader.at_eof() or self._transport.is_closing()
        self._transport.set_protocol(self)
        reader.feed_eof()  # no longer fed: what it holds is all there is, read without waiting
        leftover = await reader.read()
        self._transport.resume_reading()  # the streams may have paused it (a full buffer)
        if ended:
            self._end()
        return leftover

    def send(self, data: bytes) -> None:
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.peer.send(data)

    def eof_received(self) -> bool:
        self._end()
        return True  # the splice's owner closes both sides

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def pause_writing(self) -> None:
        self.peer._transport.pause_reading()

    def resume_writing(self) -> None:
        self.peer._transport.resume_reading()

    def _end(self) -> None:
        if not self._ended.done():
            self._ended.set_result(None)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
