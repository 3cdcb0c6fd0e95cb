"""What anyone who can reach the control API may send: never a 500, never a connection held
without a request, and aiohttp's own log lines as JSON like ours (the daemon as a subprocess)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from streamguard.core.serving import HEADER_TIMEOUT
from tests.api.raw import hold_partial_requests, raw_status
from tests.support.daemon import TOKEN, DaemonProcess


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path_factory.mktemp("unauthenticated"), "")
    try:
        process.start()
        yield process
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    finally:
        process.close()


def streams_with(authorization: bytes) -> bytes:
    return (
        b"GET /v1/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: " + authorization + b"\r\n\r\n"
    )


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer \xff\xfe",  # not UTF-8
        b"Bearer \xed\xa0\x80",  # an encoded surrogate
        b"Bearer " + TOKEN.encode() + b"\xc3",  # the token, then half a character
        b"\xc3\x28",
        "Bearer é".encode(),
    ],
)
def test_undecodable_bearer_tokens_are_401(daemon: DaemonProcess, authorization: bytes) -> None:
    assert raw_status(daemon.port, streams_with(authorization)) == 401
    assert raw_status(daemon.port, streams_with(b"Bearer " + TOKEN.encode())) == 200
    assert "Traceback" not in daemon.log()


def test_connections_holding_partial_headers_are_closed(daemon: DaemonProcess) -> None:
    held = hold_partial_requests(daemon.port, 200)
    try:
        assert daemon.request("GET", "/healthz", token=None)[0] == 200  # others still served
        for sock in held:
            # Without a header timeout the daemon never closes them: recv would wait for
            # ever, so a generous bound turns that into a failure (a hang, not a speed check).
            sock.settimeout(HEADER_TIMEOUT * 6)
            with contextlib.suppress(ConnectionResetError):  # a reset is closed too
                assert sock.recv(4096) == b""  # closed by the daemon, nothing sent
    finally:
        for sock in held:
            sock.close()


def test_a_connection_that_sends_its_request_in_time_is_answered(daemon: DaemonProcess) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(1)
        sock.sendall(b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_aiohttp_log_lines_are_json(daemon: DaemonProcess) -> None:
    # A malformed request head: aiohttp answers 400 and logs the error itself.
    bad = b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n"
    assert raw_status(daemon.port, bad) == 400
    deadline = time.monotonic() + 10
    while "aiohttp" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = daemon.log_path.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]  # every line, not only ours
    assert any(e["logger"].startswith("aiohttp") for e in entries)
