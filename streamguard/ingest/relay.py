"""What the policy proxy and the RTSP relay share: a loopback server of one source's own that
connects onwards only to checked addresses, and copies bytes both ways.

A :class:`Relay` listens on an ephemeral port of 127.0.0.1, on the source's event loop; each
connection FFmpeg makes to it is served by a named task (``stream[ID].proxy``), cancelled and
awaited when the source ends. ``denied`` and ``failure`` tell the source's reader thread
what the current connection attempt met; plain attribute writes are atomic.
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

_HEAD_LIMIT = 64 * 1024  # requests and answers heads are a URL (4 KB at most) and headers
_CHUNK = 64 * 1024

Watch = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


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
        self.port = 0
        self.denied = False
        """A target was refused by the policy in the current attempt."""
        self.failure: str | None = None
        """Why the last onward connection could not be made (``Connection refused``)."""

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT)
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


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
