"""The clip server: signed, expiring URLs, Range requests, 403 on bad signatures, no escapes."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import aiohttp
import pytest

from streamguard.engines.ams.delivery import ClipServer

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
