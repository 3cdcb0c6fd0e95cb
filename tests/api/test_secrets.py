"""Stream URL credentials never leave the daemon (API, bus, logs), and what it stores —
database, clips, evidence — is owner-only even when it runs outside systemd with umask 022.
The daemon runs as a subprocess; everything it talks to is on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from pathlib import Path
from typing import Any

from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from tests.support.daemon import DaemonProcess
from tests.support.subscriber import Subscriber

SECRET = "s3cret-pw"

INGEST = """
[ingest]
segment_seconds = 15
open_timeout = 2
read_timeout = 2
stall_timeout = 3
max_reconnect_attempts = 2
[ingest.backoff]
initial = 0.2
maximum = 0.5
"""


def stream_config(stream_id: str, url: str) -> str:
    return f'[[streams]]\nid = "{stream_id}"\nurl = "{url}"\n'


async def wait_for(predicate: Any, seconds: float, what: str) -> None:
    """Poll ``predicate`` (blocking: run in a thread) until true; fail on a hang."""
    try:
        async with asyncio.timeout(seconds):
            # The daemon is another process: there is no event to wait on, only its state.
            while not await asyncio.to_thread(predicate):  # noqa: ASYNC110
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


def failing_streams(daemon: DaemonProcess) -> dict[str, Any]:
    """The streams the API reports with a last error, by id."""
    _, body = daemon.request("GET", "/v1/streams")
    return {s["id"]: s for s in body["streams"] if s["last_error"]}


async def test_passwords_in_stream_urls_never_leave_the_daemon(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there: every attempt is refused, with the URL quoted
    from_api = f"http://alice:{SECRET}@127.0.0.1:{port}/live.mp3"
    from_file = f"HTTP://bob:{SECRET}@{SECRET}@127.0.0.1:{port}/file.mp3"  # an unencoded "@"
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "secret"\n'
    daemon = DaemonProcess(tmp_path, INGEST + mqtt + stream_config("file", from_file))
    try:
        async with Subscriber(mosquitto.port, ["secret/v1/#"], "test-secrets") as consumer:
            await asyncio.to_thread(daemon.start)
            status, created = await asyncio.to_thread(
                daemon.request, "POST", "/v1/streams", {"id": "api", "url": from_api}
            )
            assert status == 201, created
            await wait_for(lambda: len(failing_streams(daemon)) == 2, 60, "both streams failing")
            streams = await asyncio.to_thread(failing_streams, daemon)
            one = (await asyncio.to_thread(daemon.request, "GET", "/v1/streams/api"))[1]
            received = await consumer.wait_until(
                lambda got: (
                    {"api", "file"}
                    <= {m.json["stream_id"] for m in got if m.json.get("kind") == "down"}
                ),
                60,
            )
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()
    assert created["url"] == f"http://alice:***@127.0.0.1:{port}/live.mp3"
    assert streams["file"]["url"] == f"HTTP://bob:***@127.0.0.1:{port}/file.mp3"
    assert "alice:***@127.0.0.1" in streams["api"]["last_error"]
    statuses = [m.json for m in received if m.topic.endswith("/status") and m.json["last_error"]]
    assert {s["stream_id"] for s in statuses} == {"api", "file"}
    assert any("alice:***@" in s["last_error"] for s in statuses)
    log = daemon.log_path.read_text(encoding="utf-8")
    assert "alice:***@" in log
    for text in [
        json.dumps(streams),
        json.dumps(one),
        log,
        *(json.dumps(m.json) for m in received),
    ]:
        assert SECRET not in text


def modes(root: Path) -> dict[str, int]:
    """Every directory and file under ``root`` (itself included) with its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        try:
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue  # a clip deleted meanwhile
    return found


def loose(found: dict[str, int], root: Path) -> dict[str, str]:
    """The entries readable or writable by anyone but the owner."""
    return {
        name: oct(mode)
        for name, mode in found.items()
        if mode & 0o077 or mode != (0o700 if (root / name).is_dir() else 0o600)
    }


async def test_the_database_clips_and_evidence_are_owner_only(
    tmp_path: Path, room_mp3: Path
) -> None:
    state = tmp_path / "state"
    daemon = DaemonProcess(tmp_path, INGEST + stream_config("file", str(room_mp3)))
    old = os.umask(0o022)  # what a shell or a container usually has
    try:
        await asyncio.to_thread(daemon.start)
        os.umask(old)
        seen: dict[str, int] = {}

        def evidence_kept() -> bool:
            seen.update(modes(state))
            return any((state / "evidence").glob("*/*.json"))

        await wait_for(evidence_kept, 120, "evidence of the abusive turn")
        daemon.signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        os.umask(old)
        daemon.close()
    after = modes(state)
    assert {"streamguard.db", "clips", "evidence"} <= set(after)
    assert any(name.startswith("evidence/") and name.endswith(".mp3") for name in after)
    assert loose(seen, state) == {}
    assert loose(after, state) == {}
