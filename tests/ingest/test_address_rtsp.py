"""The RTSP relay reads a server's answers as FFmpeg does, so no form of redirect gets past it.

Each server here answers with a redirect to the denied 127.0.0.2 in a form some parser
other than FFmpeg's would misread: behind an interleaved frame, with bare ``\\n`` line ends,
two spaces in the status line, two ``Location`` lines (FFmpeg follows the last), two
``Content-Length`` lines (FFmpeg reads the last, so the "body" of the first is its next
answer). Real FFmpeg plays the source: the denied listener must never see a connection, and
the source must fail with the policy's words. Then, at the relay alone, how it hands FFmpeg
each answer: in plain form, exactly as FFmpeg would have read the server's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ipaddress import ip_address

import pytest

from streamguard.config.ingest import AddressPolicyConfig
from streamguard.ingest.addresses import POLICY_REFUSAL, AddressNotAllowed, AddressPolicy
from streamguard.ingest.rtsp_relay import RtspRelay
from streamguard.ingest.source import Source
from tests.ingest.test_address_sources import DENY_127_0_0_2
from tests.support.address_sites import Listener, RedirectingRtsp, moved
from tests.support.reading import read_all

pytestmark = pytest.mark.slow


def behind_a_frame(cseq: bytes, location: str) -> bytes:
    return b"$\x00\x00\x00" + moved(cseq, location)


def bare_line_ends(cseq: bytes, location: str) -> bytes:
    return moved(cseq, location).replace(b"\r\n", b"\n").replace(b"\n\n", b"\n\r\n\r\n")


def two_spaces(cseq: bytes, location: str) -> bytes:
    return moved(cseq, location).replace(b"RTSP/1.0 302", b"RTSP/1.0  302")


def two_locations(cseq: bytes, location: str) -> bytes:
    allowed = b"Location: rtsp://127.0.0.1:9/allowed\r\nLocation: "
    return moved(cseq, location).replace(b"Location: ", allowed)


def two_lengths(cseq: bytes, location: str) -> bytes:
    redirect = moved(str(int(cseq) + 1).encode(), location)
    lengths = f"Content-Length: {len(redirect)}\r\nContent-Length: 0\r\n".encode()
    return b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\n" + lengths + b"\r\n" + redirect


@pytest.mark.parametrize(
    "answer", [behind_a_frame, bare_line_ends, two_spaces, two_locations, two_lengths]
)
async def test_no_form_of_rtsp_redirect_reaches_a_denied_address(
    answer: Callable[[bytes, str], bytes],
) -> None:
    async with (
        Listener("127.0.0.2") as denied,
        RedirectingRtsp(f"rtsp://127.0.0.2:{denied.port}/room", answer) as front,
        Source(front.url, DENY_127_0_0_2, "room-rtsp", live=False) as source,
    ):
        with pytest.raises(AddressNotAllowed) as caught:
            await read_all(source)
    assert str(caught.value) == f"cannot open {front.url}: {POLICY_REFUSAL}"
    assert denied.connections == 0


async def relayed(answer: bytes) -> tuple[bytes, bool]:
    """What FFmpeg's side of the relay receives when the server sends ``answer`` (and hangs
    up), and whether the relay reported a policy refusal."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    policy = AddressPolicy.of(AddressPolicyConfig())
    try:
        async with RtspRelay(policy, stream_id="room-rtsp", connect_timeout=5) as relay:
            relay.aim([ip_address("127.0.0.1")], server.sockets[0].getsockname()[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(b"OPTIONS rtsp://127.0.0.1/room RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            received = await asyncio.wait_for(reader.read(), 60)
            writer.close()
            return received, relay.denied
    finally:
        server.close()
        await server.wait_closed()


RTP = b"$\x00\x00\x0c" + bytes(range(12))
METADATA = "rtsp://169.254.169.254/room"


TWO_WAYS_OF_ONE_ANSWER = [
    # Line ends, stray \r and tabs as FFmpeg reads them, handed on in plain form.
    (
        b"RTSP/1.0\t200 OK\nCSeq: 1\r\nX-A: a\rb\n\r\n",
        b"RTSP/1.0\t200 OK\r\nCSeq: 1\r\nX-A: ab\r\n\r\n",
    ),
    # A frame where a head line starts goes ahead of its answer; a runt is dropped.
    (
        b"RTSP/1.0 200 OK\r\n" + RTP + b"$\x01\x00\x02abCSeq: 1\r\n\r\n",
        RTP + b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
    ),
    # Content-Length as C's strtol into an int: 2**32 + 1 is a 1-byte body.
    (
        b"RTSP/1.0 200 OK\r\nContent-Length: 4294967297\r\n\r\nvRTSP/1.0 200 OK\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: 4294967297\r\n\r\nvRTSP/1.0 200 OK\r\n\r\n",
    ),
    # A line is cut at a NUL, as FFmpeg's C string is.
    (
        b"RTSP/1.0 200 OK\r\nCSeq: 1\x00Location: x\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
    ),
]


@pytest.mark.parametrize(("answer", "handed_on"), TWO_WAYS_OF_ONE_ANSWER)
async def test_answers_reach_ffmpeg_as_ffmpeg_reads_them(answer: bytes, handed_on: bytes) -> None:
    assert await relayed(answer) == (handed_on, False)


REDIRECTS = [
    f"RTSP/1.0 302x Found\r\nLocation: {METADATA}\r\n\r\n",  # atoi reads 302
    f"RTSP/1.0 200 OK\r\n\r\n\r$\x00\x00\x00RTSP/1.0 301 X\nLocation:\t{METADATA}\n\n",
    "RTSP/1.0 200 OK\r\nLocation: rtsp://127.0.0.1/\r\nlocation: rtsp://127.0.0.1/\r\n\r\n",
]


@pytest.mark.parametrize("answer", REDIRECTS)
async def test_a_redirect_ffmpeg_would_follow_is_refused_whatever_its_form(answer: str) -> None:
    received, denied = await relayed(answer.encode("latin-1"))
    assert denied
    assert b"Location" not in received
