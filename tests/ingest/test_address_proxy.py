"""The policy proxy spoken to directly, as FFmpeg and as a stranger would: what it answers,
what it tells the source, and that nothing a client sends takes it down. Loopback only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streamguard.config.ingest import AddressPolicyConfig
from streamguard.ingest.addresses import AddressPolicy
from streamguard.ingest.proxy import PolicyProxy
from streamguard.testing.net import free_port

POLICY = AddressPolicy.of(AddressPolicyConfig(deny=["127.0.0.2/32"]))


@pytest.fixture
async def proxy() -> AsyncIterator[PolicyProxy]:
    async with PolicyProxy(POLICY, stream_id="room-1", connect_timeout=5) as running:
        yield running


async def ask(proxy: PolicyProxy, request: bytes) -> bytes:
    """Send ``request`` to the proxy; everything it answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(request)
    await writer.drain()
    answer = await closing_words(reader)
    writer.close()
    return answer


async def closing_words(reader: asyncio.StreamReader) -> bytes:
    """All the proxy says until it closes (a reset, when it hung up on unread data, is b"")."""
    try:
        async with asyncio.timeout(30):
            return await reader.read()
    except ConnectionResetError:
        return b""


async def test_a_denied_target_is_403_and_the_source_is_told(proxy: PolicyProxy) -> None:
    for request in (
        b"GET http://127.0.0.2:8000/room.mp3 HTTP/1.1\r\nHost: 127.0.0.2:8000\r\n\r\n",
        b"CONNECT 127.0.0.2:443 HTTP/1.1\r\nHost: 127.0.0.2:443\r\n\r\n",
        b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n",
        b"CONNECT [fd00:ec2::254]:80 HTTP/1.1\r\n\r\n",
    ):
        proxy.begin()
        assert (await ask(proxy, request)).startswith(b"HTTP/1.1 403 ")
        assert proxy.denied


async def test_a_refused_connection_is_502_and_its_reason_kept(proxy: PolicyProxy) -> None:
    closed = free_port()
    answer = await ask(proxy, f"GET http://127.0.0.1:{closed}/x HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 502 ")
    assert (proxy.denied, proxy.failure) == (False, "Connection refused")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00garbage\r\n\r\n",  # a TLS hello where a request should be
        b"GET /relative HTTP/1.1\r\n\r\n",  # not a proxy request
        b"GET ftp://127.0.0.1/x HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n",  # no port
        b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n",
        b"GET http://127.0.0.1:99999/x HTTP/1.1\r\n\r\n",
        b"GET http://[::1/x HTTP/1.1\r\n\r\n",
    ],
)
async def test_what_is_not_a_proxy_request_is_answered_or_closed(
    proxy: PolicyProxy, request_bytes: bytes
) -> None:
    answer = await ask(proxy, request_bytes)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 ")
    assert not proxy.denied


async def test_an_endless_head_is_cut_off_and_the_proxy_serves_on(proxy: PolicyProxy) -> None:
    answer = await ask(proxy, b"GET http://127.0.0.1/" + b"a" * 200_000)
    assert answer == b""
    assert (await ask(proxy, b"CONNECT 127.0.0.2:443 HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 403")


async def test_leaving_closes_connections_still_open(proxy: PolicyProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET http://127.0.0.1")  # a head that never ends
    await writer.drain()
    await proxy.__aexit__(None, None, None)
    assert await closing_words(reader) == b""
    writer.close()
    await proxy.__aenter__()  # for the fixture's own exit
