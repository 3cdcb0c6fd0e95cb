"""The clip server: signed, expiring URLs, Range requests, 403 on bad signatures, no escapes;
nothing a stranger sends is a 500, and nobody holds a connection without a request."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest

from streamguard.engines.ams import delivery
from streamguard.engines.ams.delivery import ClipServer
from streamguard.state.db import Database
from tests.support.ams import ams_stack, engine_for

KEY = b"clip-key"


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(url, headers=headers) as response,
    ):
        return response.status, await response.read()


def signed(base: str, name: str, expires: int, key: bytes = KEY) -> str:
    sig = hmac.new(key, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{base}/clips/{name}?expires={expires}&sig={sig}"


async def test_signed_url_serves_the_clip_with_range(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    root.mkdir()
    (root / "day").mkdir()
    clip = root / "day" / "seg-1.wav"
    clip.write_bytes(bytes(range(256)) * 4)
    async with ClipServer(root, KEY) as server:
        url = server.url_for(clip)
        status, body = await fetch(url)
        partial, part = await fetch(url, {"Range": "bytes=10-19"})
    assert (status, body) == (200, clip.read_bytes())
    assert (partial, part) == (206, bytes(range(10, 20)))
    assert server.fetches == 2


async def test_bad_or_expired_signatures_get_403(tmp_path: Path) -> None:
    now = [time.time()]
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    async with ClipServer(tmp_path, KEY, clock=lambda: now[0], ttl=60) as server:
        url = server.url_for(tmp_path / "a.wav")
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        other_key = signed(server.base_url, "a.wav", int(now[0]) + 60, key=b"other")
        no_sig = url.split("?")[0]
        results = [(await fetch(u))[0] for u in (tampered, other_key, no_sig)]
        now[0] += 61
        expired, _ = await fetch(url)
    assert results == [403, 403, 403]
    assert expired == 403
    assert server.fetches == 0


async def test_paths_cannot_escape_the_clip_directory(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("nope")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    expires = int(time.time()) + 60
    async with ClipServer(root, KEY) as server:
        base = server.base_url
        statuses = [
            (await fetch(signed(base, name, expires)))[0]
            for name in ("../secret.txt", "%2e%2e/secret.txt", "link", "missing.wav")
        ]
        with pytest.raises(ValueError, match="not inside"):
            server.url_for(tmp_path / "secret.txt")
    assert all(status in (403, 404) for status in statuses)


async def test_public_base_url_is_used_in_links(tmp_path: Path) -> None:
    (tmp_path / "a b.wav").write_bytes(b"x")
    server = ClipServer(tmp_path, KEY, public_base_url="https://clips.example.com/")
    url = server.url_for(tmp_path / "a b.wav")
    assert url.startswith("https://clips.example.com/clips/a%20b.wav?expires=")


async def raw_request(port: int, head: bytes, body: bytes = b"") -> int:
    """Send exactly these bytes (headers no HTTP client would write); the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(5):
            status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()


@pytest.mark.parametrize(
    "query",
    [
        "expires=%C2%B2&sig=00",  # "²": str.isdigit says yes, int() says no
        "expires=" + "9" * 5000 + "&sig=00",  # past int()'s digit limit
        "expires={expires}&sig=%C3%A9" + "0" * 62,  # a non-ASCII signature
        "expires={expires}&sig=%FF%FE",  # not even UTF-8
        "expires=-1&sig=00",
        "expires=%201&sig=00",
    ],
)
async def test_malformed_expiry_or_signature_is_403_not_500(tmp_path: Path, query: str) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    async with ClipServer(tmp_path, KEY) as server:
        path = "/clips/a.wav?" + query.format(expires=int(time.time()) + 60)
        status = await raw_request(server.port, get(path))
    assert status == 403


@pytest.mark.parametrize("name", ["%FF%FE.wav", "%ED%A0%80.wav", "a%00.wav", "%C0%AE%C0%AE/x"])
async def test_undecodable_clip_names_are_refused_not_500(tmp_path: Path, name: str) -> None:
    async with ClipServer(tmp_path, KEY) as server:
        status = await raw_request(server.port, get(f"/clips/{name}?expires=1&sig=00"))
    assert status in (403, 404)


async def test_a_non_ascii_callback_signature_is_403_not_500(tmp_path: Path) -> None:
    async with (
        ams_stack(tmp_path / "clips") as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(stack, db),
    ):
        body = b'{"TaskId": "w-audio-x", "Status": "FINISH", "Suggestion": "Pass"}'
        port = stack.clips.port
        statuses = []
        for signature in ("é" * 64, "\N{SNOWMAN}"):
            head = (
                f"POST /ams/callback HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Content-Length: {len(body)}\r\nX-Signature: {signature}\r\n"
            ).encode()
            statuses.append(await raw_request(port, head, body))
        raw = (
            b"POST /ams/callback HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + b"X-Signature: \xff\xfe\r\n"
        )
        statuses.append(await raw_request(port, raw, body))
    assert statuses == [403, 403, 403]


async def test_connections_holding_partial_headers_are_closed(tmp_path: Path) -> None:
    async with ClipServer(tmp_path, KEY, header_timeout=1.0) as server:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(50)]
        for _, writer in held:
            writer.write(b"GET /clips/a.wav HTTP/1.1\r\nHost: x\r\n")  # and never the end
        # Never closed without a header timeout: the bound turns a hang into a failure.
        async with asyncio.timeout(30):
            closed = [await reader.read() for reader, _ in held]
        # The listener still serves everyone else.
        status, _ = await fetch(server.base_url + "/clips/a.wav")
        for _, writer in held:
            writer.close()
    assert closed == [b""] * 50
    assert status == 403


async def test_a_slow_callback_body_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "CALLBACK_BODY_TIMEOUT", 0.5)
    server = ClipServer(tmp_path, KEY)

    async def handler(body: bytes, headers: Mapping[str, str]) -> int:
        return 200

    server.on_callback = handler
    async with server:
        head = b"POST /ams/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        status = await raw_request(server.port, head, b"only part of it")
    assert status == 408


async def test_the_clip_directory_is_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # what a shell or a container usually has
    try:
        async with ClipServer(tmp_path / "state" / "ams-clips", KEY):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "ams-clips").stat().st_mode) == 0o700
