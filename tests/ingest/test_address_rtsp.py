"""The RTSP relay reads a server's answers as FFmpeg does, so no form of redirect gets past it.

Each server here answers with a redirect to the denied 127.0.0.2 in a form some parser
other than FFmpeg's would misread: behind an interleaved frame, with bare ``\\n`` line ends,
two spaces in the status line, two ``Location`` lines (FFmpeg follows the last), two
``Content-Length`` lines (FFmpeg reads the last, so the "body" of the first is its next
answer). Real FFmpeg plays the source: the denied listener must never see a connection, and
the source must fail with the policy's words.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamguard.ingest.addresses import POLICY_REFUSAL, AddressNotAllowed
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
