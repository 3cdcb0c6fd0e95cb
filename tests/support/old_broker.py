"""A broker that only speaks MQTT 3.1.1: a loopback gate in front of the real mosquitto.

A CONNECT for protocol level 5 is refused with a 3.1.1 CONNACK "unacceptable protocol
version" (what a 3.1.1-only broker answers); any other connection is piped to mosquitto.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

__all__ = ["OldBroker"]

REFUSED_PROTOCOL = b"\x20\x02\x00\x01"


class OldBroker:
    """Listens on a free loopback port; counts refused version-5 connects."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.refused_v5 = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Python 3.11's server does not own its connection handlers: end them here.
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        try:
            first = await reader.readexactly(1)
            length_bytes = b""
            length, shift = 0, 0
            while True:
                byte = await reader.readexactly(1)
                length_bytes += byte
                length |= (byte[0] & 0x7F) << shift
                shift += 7
                if not byte[0] & 0x80:
                    break
            body = await reader.readexactly(length)
            if body[6] == 5:  # protocol level after the "MQTT" protocol name
                self.refused_v5 += 1
                writer.write(REFUSED_PROTOCOL)
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            up_writer.write(first + length_bytes + body)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(_pipe(reader, up_writer), name="old-broker.up")
                    group.create_task(_pipe(up_reader, writer), name="old-broker.down")
            finally:
                up_writer.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    sink.close()
