"""The whole daemon as a subprocess: API, signals, restart, alerts on a real mosquitto."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamguard.testing.broker import Mosquitto
from streamguard.testing.media_servers import IcecastServer
from streamguard.testing.net import free_port
from tests.support.daemon import DaemonProcess
from tests.support.subscriber import Subscriber

FAST_INGEST = """
[ingest]
segment_seconds = 15
open_timeout = 2
read_timeout = 2
stall_timeout = 3
[ingest.backoff]
initial = 0.2
maximum = 1.0
"""


@pytest.fixture(scope="module")
def api_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("api-daemon"), FAST_INGEST)
    try:
        daemon.start()
        yield daemon
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
        daemon.wait_for_message("STOPPING=1", 5)
    finally:
        daemon.close()


def test_notify_protocol_ready_and_watchdog(api_daemon: DaemonProcess) -> None:
    assert "READY=1" in api_daemon.messages
    api_daemon.wait_for_message("WATCHDOG=1", 10)  # WATCHDOG_USEC=2 s: a ping every second
    ready = api_daemon.messages.index("READY=1")
    assert api_daemon.messages[ready + 1].startswith("STATUS=0 stream(s); API on 127.0.0.1:")


def test_health_metrics_and_openapi_need_no_token(api_daemon: DaemonProcess) -> None:
    assert api_daemon.request("GET", "/healthz", token=None) == (200, {"status": "ok"})
    status, body = api_daemon.request("GET", "/readyz", token=None)
    assert status == 200
    assert body["checks"]["database"]["ok"] is True
    status, text = api_daemon.request("GET", "/metrics", token=None)
    assert status == 200
    assert "streamguard_outbox_depth" in text
    # The local engine (the default) reports its own counters, health events by kind too.
    assert 'streamguard_local_engine_segments_total{outcome="moderated"}' in text
    assert 'streamguard_local_engine_health_events_total{kind="overloaded"} 0.0' in text
    assert "streamguard_local_engine_backlog_limit " in text
    # The operator's surface: build, process, runtime and GC, evidence on disk.
    assert re.search(
        r'^streamguard_build_info\{python="[\d.]+",version="[^"]+"\} 1\.0$', text, re.M
    )
    for family in (
        "process_open_fds",
        "process_resident_memory_bytes",
        "python_gc_objects_collected_total",
        "python_info",
        "streamguard_evidence_bytes ",
    ):
        assert family in text, family
    status, spec = api_daemon.request("GET", "/openapi.json", token=None)
    assert status == 200
    assert {"/v1/streams", "/v1/streams/{id}", "/v1/results", "/v1/feedback"} <= set(spec["paths"])


def test_health_command_checks_the_configured_port(
    api_daemon: DaemonProcess, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "streamguard", "health", "-c"]
    healthy = subprocess.run(
        [*command, str(api_daemon.config_path)], capture_output=True, check=False, timeout=60
    )
    assert healthy.returncode == 0, healthy.stderr
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(f"[api]\nport = {free_port()}\n", encoding="utf-8")
    done = subprocess.run(
        [*command, str(elsewhere)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 1
    assert "/healthz" in done.stderr


def test_run_with_a_broken_config_exits_with_the_config_code(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[engine]\nmodel = 1\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "streamguard", "run", "-c", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 78, done.stderr  # RestartPreventExitStatus=78 in the units
    assert "engine" in done.stderr


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_stream_routes_need_the_token(api_daemon: DaemonProcess, token: str | None) -> None:
    status, body = api_daemon.request("GET", "/v1/streams", token=token)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    status, _ = api_daemon.request(
        "POST", "/v1/streams", {"id": "x", "url": "http://127.0.0.1:9/a"}, token=token
    )
    assert status == 401


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b'{"id": "a b", "url": "http://x/"}', "invalid_stream"),
        (b'{"id": "ok"}', "invalid_stream"),
        (b'{"id": "ok", "url": "http://x/", "colour": "red"}', "invalid_stream"),
        (b'{"id": "ok", "url": "http://x/", "segment_seconds": 20}', "invalid_stream"),
    ],
)
def test_malformed_bodies_get_clear_400s(api_daemon: DaemonProcess, raw: bytes, code: str) -> None:
    status, body = api_daemon.request("POST", "/v1/streams", raw=raw)
    assert status == 400
    assert body["error"]["code"] == code


@pytest.mark.parametrize(
    ("url", "protocol"),
    [
        ("file:///etc/passwd", "file"),
        ("/etc/passwd", "file"),
        ("data:audio/mp3;base64,AAAA", "data"),
        ("ftp://127.0.0.1/a.mp3", "ftp"),
        ("gopher://127.0.0.1/a", "gopher"),
        ("concat:http://a/1.mp3|http://a/2.mp3", "concat"),
    ],
)
def test_api_refuses_protocols_off_the_allow_list(
    api_daemon: DaemonProcess, url: str, protocol: str
) -> None:
    status, body = api_daemon.request("POST", "/v1/streams", {"id": "refused", "url": url})
    assert status == 422, body
    assert body["error"]["code"] == "protocol_not_allowed"
    assert repr(protocol) in body["error"]["message"]
    assert api_daemon.request("GET", "/v1/streams/refused")[0] == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"id": "nohost", "url": "http://"}, 422, "invalid_source"),
        ({"id": "badurl", "url": "http://[::1"}, 422, "invalid_source"),
        ({"id": "kids", "url": "http://127.0.0.1:9/x", "profile": "kids"}, 422, "unknown_profile"),
    ],
)
def test_streams_the_daemon_cannot_run_are_refused(
    api_daemon: DaemonProcess, body: dict[str, str], status: int, code: str
) -> None:
    got, reply = api_daemon.request("POST", "/v1/streams", body)
    assert (got, reply["error"]["code"]) == (status, code), reply
    assert api_daemon.request("GET", f"/v1/streams/{body['id']}")[0] == 404


def test_deeply_nested_json_is_a_400(api_daemon: DaemonProcess) -> None:
    raw = b"[" * 30_000 + b"]" * 30_000
    status, body = api_daemon.request("POST", "/v1/streams", raw=raw)
    assert status == 400
    assert body["error"]["code"] == "malformed_json"


def test_attach_read_change_detach(api_daemon: DaemonProcess) -> None:
    stream = {"id": "lobby", "url": "http://127.0.0.1:9/live.mp3", "room": "r1"}
    status, body = api_daemon.request("POST", "/v1/streams", stream)
    assert status == 201, body
    assert body["room"] == "r1"
    assert api_daemon.request("POST", "/v1/streams", stream)[0] == 409
    status, body = api_daemon.request("PATCH", "/v1/streams/lobby", {"metadata": {"a": "b"}})
    assert status == 200
    assert body["metadata"] == {"a": "b"}
    assert api_daemon.request("PATCH", "/v1/streams/lobby", {"id": "other"})[0] == 400
    ids = [s["id"] for s in api_daemon.request("GET", "/v1/streams")[1]["streams"]]
    assert "lobby" in ids
    assert api_daemon.request("DELETE", "/v1/streams/lobby")[0] == 204
    assert api_daemon.request("GET", "/v1/streams/lobby")[0] == 404
    assert api_daemon.request("DELETE", "/v1/streams/lobby")[0] == 404


def test_feedback_is_stored_and_counted(api_daemon: DaemonProcess) -> None:
    before = api_daemon.request("GET", "/v1/feedback")[1]["counts"]["false_positive"]
    entry = {"kind": "false_positive", "alert_id": "alr-1", "label": "Abuse", "note": "a game"}
    status, body = api_daemon.request("POST", "/v1/feedback", entry)
    assert status == 201
    assert body["target_id"] == "alr-1"
    after = api_daemon.request("GET", "/v1/feedback")[1]["counts"]["false_positive"]
    assert after.get("Abuse", 0) == before.get("Abuse", 0) + 1
    for bad in ({"kind": "meh", "alert_id": "a"}, {"kind": "missed"}, {"kind": "missed", "x": 1}):
        assert api_daemon.request("POST", "/v1/feedback", bad)[0] == 400


@pytest.mark.parametrize(
    "query",
    [
        "min_risk=extreme",
        "since=yesterday",
        "since=2026-01-01T00:00:00",
        "limit=0",
        "since=0001-01-01T00:00:00%2B01:00",
    ],
)
def test_bad_result_queries_are_400(api_daemon: DaemonProcess, query: str) -> None:
    status, body = api_daemon.request("GET", f"/v1/results?{query}")
    assert status == 400
    assert body["error"]["code"] == "bad_query"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
STREAM_KEYS = ["id", "url", "room", "profile", "segment_seconds", "metadata"]
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({}, optional=dict.fromkeys(STREAM_KEYS, JSON)),
    st.fixed_dictionaries(
        {
            "id": st.text(alphabet=string.ascii_letters + "-_#@ ", min_size=1, max_size=45),
            "url": st.sampled_from(
                [
                    "http://127.0.0.1:9/x",
                    "rtsp://127.0.0.1:9/x",
                    "tcp://1.2.3.4:5",
                    "",
                    "x",
                    "http://",
                    "http://[::1",
                    "rtmp://",
                    "hls+http://127.0.0.1:9/a.m3u8",
                ]
            ),
        },
        optional={
            "segment_seconds": st.sampled_from([15, 30, 60, 0, "15"]),
            "profile": st.sampled_from(["default", "kids", ""]),
        },
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
def test_fuzzed_stream_bodies_never_cause_a_5xx(api_daemon: DaemonProcess, body: Any) -> None:
    status, reply = api_daemon.request("POST", "/v1/streams", raw=json.dumps(body).encode())
    assert status < 500, reply
    if status == 201:
        path = f"/v1/streams/{quote(reply['id'], safe='')}"  # ids may hold '#' and '@'
        assert api_daemon.request("DELETE", path)[0] == 204
    status, reply = api_daemon.request("PATCH", "/v1/streams/nope", raw=json.dumps(body).encode())
    assert status == 404, reply


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(["stream", "label", "min_risk", "since", "until", "limit", "data_id"]),
        st.text(alphabet=string.printable, max_size=20),
    )
)
def test_fuzzed_result_queries_never_cause_a_5xx(
    api_daemon: DaemonProcess, params: dict[str, str]
) -> None:
    status, reply = api_daemon.request("GET", f"/v1/results?{urlencode(params)}")
    assert status in (200, 400), reply


def results_of(daemon: DaemonProcess) -> list[sqlite3.Row]:
    with sqlite3.connect(daemon.workdir / "state" / "streamguard.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM results ORDER BY stream_id, seq").fetchall()


async def wait_for(predicate: Any, seconds: float, what: str) -> None:
    """Poll ``predicate`` (blocking calls run in a thread) until true; fail on a hang."""
    try:
        async with asyncio.timeout(seconds):
            # The daemon is another process: there is no event to wait on, only its state.
            while not await asyncio.to_thread(predicate):  # noqa: ASYNC110
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


def stream_config(stream_id: str, url: str, room_id: str = "") -> str:
    return f'[[streams]]\nid = "{stream_id}"\nurl = "{url}"\nroom = "{room_id}"\n'


async def test_two_rooms_attached_through_the_api_alert_on_mqtt(
    mosquitto: Mosquitto, tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    media, seconds = room_media
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "two"\n'
    daemon = DaemonProcess(tmp_path, FAST_INGEST + mqtt)
    try:
        await asyncio.to_thread(daemon.start)
        async with (
            # Twice real-time pace: a live broadcast, just a quicker one. It starts once the
            # daemon is ready, so the rooms are heard from their beginning.
            IcecastServer(media, seconds / 2) as first,
            IcecastServer(media, seconds / 2) as second,
            Subscriber(mosquitto.port, ["two/v1/#"], "test-two-rooms") as consumer,
        ):
            for stream_id, server in (("room-a", first), ("room-b", second)):
                body = {
                    "id": stream_id,
                    "url": server.url,
                    "room": f"{stream_id}-room",
                    "metadata": {"host": stream_id},
                }
                status, reply = await asyncio.to_thread(daemon.request, "POST", "/v1/streams", body)
                assert status == 201, reply

            def alerted(rooms: set[str]) -> Any:
                return lambda got: (
                    rooms
                    <= {
                        m.json["stream"]["room_id"]
                        for m in got
                        if "/alerts/" in m.topic and m.json["incident"]["event"] == "new"
                    }
                )

            received = await consumer.wait_until(alerted({"room-a-room", "room-b-room"}), 120)
            alerts = [m for m in received if "/alerts/" in m.topic]
            for message in alerts:
                assert message.json["risk"]["label"] == "Abuse"
                assert message.json["stream"]["metadata"] == {"host": message.json["stream"]["id"]}
                assert message.topic == f"two/v1/alerts/{message.json['stream']['room_id']}"
            online = {
                m.json["stream_id"]
                for m in received
                if m.topic.endswith("/status") and m.json["state"] == "online"
            }
            assert online == {"room-a", "room-b"}

            def published() -> float:
                _, metrics = daemon.request("GET", "/metrics", token=None)
                counted = [
                    float(line.split()[-1])
                    for line in metrics.splitlines()
                    if line.startswith("streamguard_alerts_published_total")
                ]
                return counted[0] if counted else 0.0

            # Acknowledgements are counted just after the broker's PUBACK: a moment later.
            await wait_for(lambda: published() >= len(alerts), 10, "alerts counted")
            _, metrics = daemon.request("GET", "/metrics", token=None)
            assert re.search(
                r'^streamguard_alerts_raised_total\{label="Abuse",risk="(medium|high)"\} [1-9]',
                metrics,
                re.M,
            )
            assert re.search(
                r'^streamguard_stream_state\{state="\w+",stream="room-a"\} 1\.0$', metrics, re.M
            )
            assert re.search(
                r'^streamguard_stream_last_audio_age_seconds\{stream="room-a"\} ', metrics, re.M
            )
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()


async def test_sigterm_with_work_in_flight_judges_the_tail_and_exits_0(
    tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    media, seconds = room_media
    async with IcecastServer(media, seconds) as server:  # real-time pace
        daemon = DaemonProcess(tmp_path, FAST_INGEST + stream_config("live", server.url))
        try:
            await asyncio.to_thread(daemon.start)
            await wait_for(lambda: len(results_of(daemon)) >= 1, 90, "the first segment")
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
        finally:
            daemon.close()
    rows = results_of(daemon)
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    tail = json.loads(rows[-1]["segment"])
    assert "partial" in tail["flags"]
    assert all(json.loads(r["segment"])["duration"] == 15 for r in rows[:-1])
    assert all(r["outcome"] in ("moderated", "no_speech") for r in rows)


async def test_sighup_applies_the_changed_streams_only(
    tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    media, seconds = room_media
    async with IcecastServer(media, seconds) as a, IcecastServer(media, seconds) as b:
        config = FAST_INGEST + stream_config("keep", a.url) + stream_config("drop", b.url)
        daemon = DaemonProcess(tmp_path, config)
        try:
            await asyncio.to_thread(daemon.start)
            # Streams attach after the daemon reports ready: wait until both are connected.
            await wait_for(lambda: a.connections and b.connections, 30, "both streams attached")
            connections_before = a.connections

            def ids() -> set[str]:
                return {s["id"] for s in daemon.request("GET", "/v1/streams")[1]["streams"]}

            assert await asyncio.to_thread(ids) == {"keep", "drop"}
            daemon.write_config(
                FAST_INGEST + stream_config("keep", a.url) + stream_config("new", b.url)
            )
            daemon.signal(signal.SIGHUP)
            await wait_for(lambda: ids() == {"keep", "new"}, 30, "the reload")
            assert a.connections == connections_before  # the unchanged stream was not touched
            daemon.write_config("[ingest]\nsegment_seconds = 7\n")  # broken: refused, kept
            daemon.signal(signal.SIGHUP)
            await asyncio.to_thread(
                daemon.wait_for_message, "STATUS=reload refused: 1 problem(s)", 30
            )
            assert await asyncio.to_thread(ids) == {"keep", "new"}
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
        finally:
            daemon.close()


async def test_sigkill_then_restart_delivers_the_waiting_alert(
    mosquitto: Mosquitto, tmp_path: Path, room_mp3: Path
) -> None:
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntopic_prefix = "crash"\n'
    config = FAST_INGEST + mqtt + stream_config("file", str(room_mp3), "crash-room")
    daemon = DaemonProcess(tmp_path, config)
    try:
        async with Subscriber(mosquitto.port, ["crash/v1/alerts/#"], "test-crash") as consumer:
            mosquitto.stop()  # the alert must wait in the outbox
            try:
                await asyncio.to_thread(daemon.start)

                await wait_for(lambda: waiting_alerts(daemon), 90, "an alert in the outbox")
                daemon.kill()  # SIGKILL
                waiting = waiting_alerts(daemon)
            finally:
                mosquitto.start()
            await asyncio.to_thread(daemon.start)  # the same state directory
            received = await consumer.wait_until(
                lambda got: waiting <= {m.json["alert_id"] for m in got}, 60
            )
            first = next(m for m in received if m.json["alert_id"] in waiting)
            assert first.json["risk"]["label"] == "Abuse"
            assert first.json["stream"]["room_id"] == "crash-room"
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()


def waiting_alerts(daemon: DaemonProcess) -> set[str]:
    """Ids of the alerts waiting in the daemon's outbox."""
    path = daemon.workdir / "state" / "streamguard.db"
    if not path.exists():
        return set()
    with sqlite3.connect(path) as conn:
        try:
            rows = conn.execute("SELECT message_id FROM alerts_outbox WHERE kind = 'alert'")
            return {row[0] for row in rows}
        except sqlite3.OperationalError:  # not created yet
            return set()


def test_chat_text_is_moderated_through_the_api(api_daemon: DaemonProcess) -> None:
    body = {"items": [{"id": "m1", "text": "you idiot"}, {"id": "m2", "text": "good game"}]}
    status, answer = api_daemon.request("POST", "/v1/moderate/text", body)
    assert status == 200, answer
    rude, fine = answer["results"]
    assert (rude["id"], rude["suggestion"], rude["label"]) == ("m1", "Review", "Abuse")
    assert (fine["id"], fine["suggestion"]) == ("m2", "Pass")
    status, _ = api_daemon.request("POST", "/v1/moderate/text", body, token=None)
    assert status == 401
