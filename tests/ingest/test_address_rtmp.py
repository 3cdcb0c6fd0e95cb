"""An RTMP source pinned to its checked address still names its host to the server: FFmpeg's
``connect`` command carries the same ``tcUrl`` as it would unpinned (CDN and vhost servers
pick the application by it). RTMPS goes through the policy proxy by name, so its TLS
handshake names the host too (SNI). Real FFmpeg connects to a loopback server that records
both."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import av
import pytest

from streamguard.ingest.guard import AddressGuard
from streamguard.ingest.protocols import SourceTarget, resolve_source
from tests.ingest.test_address_sources import LOOPBACK_ALLOWED
from tests.support.address_sites import RtmpConnects
from tests.support.tls import make_certificates

pytestmark = pytest.mark.slow


def connect(target: SourceTarget) -> None:
    """Open ``target`` with FFmpeg as far as the server lets it (it hangs up after connect)."""
    with pytest.raises(OSError, match="Input/output error"):
        av.open(target.url, format=target.format, options=target.options, timeout=10).close()


@pytest.mark.parametrize(
    "path",
    [
        "/live/room-7",
        "/live",
        "/app/instance/room-7",
        "/vod/mp4:rooms/room-7.mp4",
        "/live/room-7?token=a/b",
        "/live/room-7?slist=room-7&token=1",
        "/ondemand/room-7",
    ],
)
async def test_a_pinned_rtmp_source_sends_the_tc_url_ffmpeg_would_with_the_name(
    path: str,
) -> None:
    async with RtmpConnects() as server:
        target = resolve_source(f"rtmp://localhost:{server.port}{path}", LOOPBACK_ALLOWED)
        pinned = AddressGuard(target, LOOPBACK_ALLOWED, "room-7").route()
        assert "localhost" not in pinned.url  # FFmpeg has no name to resolve
        await asyncio.to_thread(connect, pinned)
        await asyncio.to_thread(connect, target)  # FFmpeg's own, unpinned
    by_address, by_name = server.tc_urls
    assert by_address == by_name
    assert by_name.startswith(f"rtmp://localhost:{server.port}/")


async def test_rtmps_keeps_its_host_name_in_the_tls_handshake_and_the_tc_url(
    tmp_path: Path,
) -> None:
    certificates = make_certificates(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificates.server_cert, certificates.server_key)
    async with RtmpConnects(tls) as server:
        url = f"rtmps://localhost:{server.port}/live/room-7"
        target = resolve_source(url, LOOPBACK_ALLOWED)
        async with AddressGuard(target, LOOPBACK_ALLOWED, "room-7") as guard:
            routed = await asyncio.to_thread(guard.route)
            assert routed.url == url  # through the policy proxy, by name
            await asyncio.to_thread(connect, routed)
    assert server.names == ["localhost"]
    assert server.tc_urls == [f"rtmps://localhost:{server.port}/live"]
