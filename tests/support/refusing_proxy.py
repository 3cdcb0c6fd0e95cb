"""A broker that refuses chosen messages: a TCP relay in front of a real mosquitto.

mosquitto 2.0 refuses by topic (its ACL: 0x87) but never a message for its content: it does
not check a payload's format, and answers one larger than its limit with 0x95, which MQTT 5
does not allow on a PUBACK (paho drops the connection over it). Brokers with payload rules
(schemas, size per message) answer such a message with PUBACK 0x99 and accept the rest. The
relay plays that part: every packet passes both ways unchanged, but a QoS 1 PUBLISH whose
bytes contain a chosen marker is kept from the broker and answered with a PUBACK carrying the
chosen reason code (for its first ``times`` publishes, or always).
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from streamguard.testing.net import free_port

__all__ = ["RefusingProxy"]

_PUBLISH = 3


@dataclass
class _Rule:
    code: int
    left: int | None
    """Refusals still to give (None: always)."""


class RefusingProxy:
    """Listens on ``port``; relays to mosquitto on ``broker_port``."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.port = free_port()
        self.refused: list[bytes] = []
        """The marker of each PUBLISH refused, in order."""
        self._rules: dict[bytes, _Rule] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def refuse(self, marker: str, code: int, times: int | None = None) -> None:
        """Refuse the QoS 1 PUBLISHes containing ``marker`` with ``code``."""
        self._rules[marker.encode()] = _Rule(code, times)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._up(reader, up_writer, writer), name="proxy.up")
                    group.create_task(self._down(up_reader, writer), name="proxy.down")
            finally:
                up_writer.close()
        except* (ConnectionError, asyncio.IncompleteReadError):
            pass  # either side closed: the other is closed below
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _up(
        self, client: asyncio.StreamReader, broker: asyncio.StreamWriter, back: asyncio.StreamWriter
    ) -> None:
        while True:
            packet = await _packet(client)
            answer = self._answer(packet)
            if answer is None:
                broker.write(packet)
                await broker.drain()
            else:
                back.write(answer)
                await back.drain()

    async def _down(self, broker: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        while True:
            client.write(await _packet(broker))
            await client.drain()

    def _answer(self, packet: bytes) -> bytes | None:
        """The PUBACK refusing ``packet``, or None to pass it on."""
        qos = (packet[0] >> 1) & 3
        if packet[0] >> 4 != _PUBLISH or qos != 1:
            return None
        for marker, rule in self._rules.items():
            if marker in packet and rule.left != 0:
                if rule.left is not None:
                    rule.left -= 1
                self.refused.append(marker)
                body = _body_start(packet)
                length = int.from_bytes(packet[body : body + 2], "big")
                mid = packet[body + 2 + length : body + 4 + length]
                return bytes([0x40, 0x03]) + mid + bytes([rule.code])
        return None


def _body_start(packet: bytes) -> int:
    """Where the variable header starts: after the type byte and the remaining length."""
    index = 1
    while packet[index] & 0x80:
        index += 1
    return index + 1


async def _packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT control packet."""
    head = await reader.readexactly(1)
    length, shift, size = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        size += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return head + size + await reader.readexactly(length)
