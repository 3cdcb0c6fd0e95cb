"""The address policy seen from outside the daemon (issue 11, item 7): the API refuses a URL
naming a denied address up front, and a stream sent there by a redirect fails with one and
the same words, whatever the target is (open, 404, closed), in the API, on the bus and in
the log. The daemon runs as a subprocess; 127.0.0.2 is the denied address."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from streamguard.ingest.addresses import POLICY_REFUSAL
from streamguard.testing.broker import Mosquitto
from streamguard.testing.net import free_port
from tests.support.address_sites import Site
from tests.support.daemon import DaemonProcess
from tests.support.media import encode_tone
from tests.support.subscriber import Subscriber

pytestmark = pytest.mark.slow

POLICY = '[ingest.addresses]\ndeny = ["127.0.0.2/32"]\n'
INGEST = """
[ingest]
open_timeout = 2
read_timeout = 2
stall_timeout = 3
max_reconnect_attempts = 2
[ingest.backoff]
initial = 0.2
maximum = 0.5
"""


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


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8000/room.mp3",
        "http://169.254.169.254/latest/meta-data/",
        "rtmp://[fe80::1]/live/x",
    ],
)
def test_the_api_refuses_a_url_naming_a_denied_address(tmp_path: Path, url: str) -> None:
    daemon = DaemonProcess(tmp_path, INGEST + POLICY)
    try:
        daemon.start()
        status, body = daemon.request("POST", "/v1/streams", {"id": "probe", "url": url})
        listed = daemon.request("GET", "/v1/streams")[1]
    finally:
        daemon.close()
    assert status == 422, body
    assert body["error"] == {"code": "address_not_allowed", "message": POLICY_REFUSAL}
    assert listed["streams"] == []


async def test_a_denied_target_tells_nothing_in_the_api_the_bus_and_the_log(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    recording = encode_tone(tmp_path / "tone.mp3", 440, 3, rate=16000).read_bytes()
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "policy"\n'
    daemon = DaemonProcess(tmp_path / "daemon", INGEST + POLICY + mqtt)
    async with Site("127.0.0.1", recording) as front, Site("127.0.0.2", recording) as denied:
        targets = {
            "open": denied.url("/room.mp3"),
            "missing": denied.url("/missing.mp3"),
            "closed": f"http://127.0.0.2:{free_port()}/room.mp3",
        }
        urls = {name: front.url(f"/to?url={target}") for name, target in targets.items()}
        try:
            async with Subscriber(mosquitto.port, ["policy/v1/#"], "test-policy") as consumer:
                await asyncio.to_thread(daemon.start)
                for name, url in urls.items():
                    status, _ = await asyncio.to_thread(
                        daemon.request, "POST", "/v1/streams", {"id": name, "url": url}
                    )
                    assert status == 201
                await wait_for(lambda: len(failing_streams(daemon)) == 3, 60, "3 failing streams")
                streams = await asyncio.to_thread(failing_streams, daemon)
                received = await consumer.wait_until(lambda got: downs(got) >= set(urls), 60)
                daemon.signal(signal.SIGTERM)
                assert await asyncio.to_thread(daemon.wait) == 0
        finally:
            daemon.close()
    assert denied.requests == 0
    # Open, 404 or closed: the same words (the stream's own URL aside).
    said = {streams[name]["last_error"].replace(url, "URL") for name, url in urls.items()}
    assert len(said) == 1, said
    assert said.pop().endswith(f"cannot open URL: {POLICY_REFUSAL}")
    told: list[str] = [
        text for m in received if (text := m.json.get("last_error") or m.json.get("detail"))
    ]
    assert told
    assert all(t.endswith(POLICY_REFUSAL) for t in told), told
    log = daemon.log_path.read_text(encoding="utf-8")
    assert POLICY_REFUSAL in log
    for revealing in ("Connection refused", "Not Found", "the server answered"):
        assert revealing not in log


def downs(messages: list[Any]) -> set[str]:
    return {m.json["stream_id"] for m in messages if m.json.get("kind") == "down"}
