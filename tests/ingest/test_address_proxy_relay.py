"""The policy proxy relaying a tunnel once its target is checked: bytes pass both ways intact,
a side that goes away ends the other, and a reader that falls behind holds the proxy to a
bounded buffer instead of letting it read the server dry. Loopback only."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from streamguard.config.ingest import AddressPolicyConfig
from streamguard.ingest.addresses import AddressPolicy
from streamguard.ingest.proxy import PolicyProxy

POLICY = AddressPolicy.of(AddressPolicyConfig(deny=["127.0.0.2/32"]))
OPENED = b"HTTP/1.1 200 Connection established\r\n\r\n"
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def proxy() -> AsyncIterator[PolicyProxy]:
    async with PolicyProxy(POLICY, stream_id="room-1", connect_timeout=5) as running:
        yield running


async def server(serve: Serve) -> asyncio.Server:
    """A loopback server whose connections ``serve`` handles (and are closed after)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def tunnel(
    proxy: PolicyProxy, upstream: asyncio.Server, first: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A CONNECT tunnel through the proxy to ``upstream`` (``first`` sent with the request)."""
    port = upstream.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode() + first)
    assert await reader.readexactly(len(OPENED)) == OPENED
    return reader, writer


async def test_bytes_sent_with_the_request_reach_the_server_and_its_answer_comes_back(
    proxy: PolicyProxy,
) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)

    async with await server(echo) as upstream:
        reader, writer = await tunnel(proxy, upstream, first=b"hello ")
        writer.write(b"world")
        async with asyncio.timeout(30):
            assert await reader.readexactly(11) == b"hello world"
        writer.close()


async def test_a_server_that_goes_away_mid_stream_ends_the_client_side(proxy: PolicyProxy) -> None:
    async def half_then_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * 100_000)
        await writer.drain()

    async with await server(half_then_gone) as upstream:
        reader, writer = await tunnel(proxy, upstream)
        async with asyncio.timeout(30):
            assert len(await reader.read()) == 100_000  # all of it, then the end
        writer.close()
    assert proxy.buffered == 0


async def test_a_client_that_goes_away_mid_stream_ends_the_server_side(proxy: PolicyProxy) -> None:
    ended = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()
        finally:
            ended.set()

    async with await server(endless) as upstream:
        reader, writer = await tunnel(proxy, upstream)
        await reader.readexactly(100_000)
        writer.close()
        async with asyncio.timeout(30):
            await ended.wait()  # the proxy closed its side: the server's writes failed


async def test_a_slow_reader_holds_the_proxy_to_a_bounded_buffer(proxy: PolicyProxy) -> None:
    size = 16 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)

    async def fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for start in range(0, size, 65536):
            writer.write(payload[start : start + 65536])
            await writer.drain()

    most, got = 0, hashlib.sha256()
    async with await server(fast) as upstream:
        reader, writer = await tunnel(proxy, upstream)
        async with asyncio.timeout(120):
            while data := await reader.read(4096):  # 4 KB a turn of the loop: slower
                got.update(data)  # than the server's 64 KB writes and the proxy's reads
                most = max(most, proxy.buffered)
                await asyncio.sleep(0)
        writer.close()
    assert got.digest() == hashlib.sha256(payload).digest()
    # The proxy did buffer (the reader was behind), but never beyond its high-water mark
    # (64 KiB) and one read (256 KiB), where an unpaused relay would take in most of 16 MB.
    assert 64 * 1024 <= most <= 512 * 1024, most


async def test_leaving_closes_tunnels_mid_stream(proxy: PolicyProxy) -> None:
    ended = asyncio.Event()

    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ready")
        await reader.read()  # until the proxy hangs up
        ended.set()

    async with await server(quiet) as upstream:
        reader, writer = await tunnel(proxy, upstream)
        assert await reader.readexactly(5) == b"ready"
        await proxy.__aexit__(None, None, None)
        async with asyncio.timeout(30):
            assert await reader.read() == b""
            await ended.wait()
        writer.close()
    await proxy.__aenter__()  # for the fixture's own exit


async def test_a_slow_server_holds_the_proxy_to_a_bounded_buffer(proxy: PolicyProxy) -> None:
    size = 16 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    most, got, done = 0, hashlib.sha256(), asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal most
        while data := await reader.read(4096):
            got.update(data)
            most = max(most, proxy.buffered)
            await asyncio.sleep(0)
        done.set()

    async with await server(slow) as upstream:
        reader, writer = await tunnel(proxy, upstream)
        async with asyncio.timeout(120):
            for start in range(0, size, 65536):
                writer.write(payload[start : start + 65536])
                await writer.drain()
            writer.write_eof()  # the proxy closes both sides, once what it holds is sent
            assert await reader.read() == b""
            await done.wait()
        writer.close()
    assert got.digest() == hashlib.sha256(payload).digest()
    assert 64 * 1024 <= most <= 512 * 1024, most


async def test_the_relay_forgets_the_connections_it_has_closed(proxy: PolicyProxy) -> None:
    """A source's relay lives as long as the source, and FFmpeg reconnects through it: it
    keeps no record of the connections that ended (spliced ones included)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)

    async with await server(echo) as upstream:
        for _ in range(5):
            reader, writer = await tunnel(proxy, upstream, first=b"ping")
            async with asyncio.timeout(30):
                assert await reader.readexactly(4) == b"ping"
            writer.close()
            await writer.wait_closed()
        async with asyncio.timeout(30):
            while proxy._accepted:  # noqa: ASYNC110 - nothing signals a forgotten connection
                await asyncio.sleep(0.01)
