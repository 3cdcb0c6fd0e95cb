"""Stream ids, rooms and metadata are bounded, in the config file and the API alike (issue 11,
item 1): a room of 22,000 '#' became a 66,022-byte topic that killed the publisher."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from streamguard.config import parse_config
from streamguard.config.streams import MAX_ROOM_LENGTH, StreamConfig
from streamguard.core.errors import ConfigError
from streamguard.core.topics import Topics
from tests.support.daemon import DaemonProcess

URL = "http://127.0.0.1:9/live.mp3"

REFUSED: dict[str, tuple[dict[str, Any], str, str]] = {
    "the issue's room": ({"room": "#" * 22_000}, "room", "at most 128 characters"),
    "one too long": ({"room": "r" * (MAX_ROOM_LENGTH + 1)}, "room", "at most 128 characters"),
    "a newline": ({"room": "a\nb"}, "room", "U+000A"),
    "a NUL": ({"room": "a\x00b"}, "room", "U+0000"),
    "a right-to-left override": ({"room": "a\u202eb"}, "room", "U+202E"),
    "a long id": ({"id": "s" * 41}, "id", "should match pattern"),
    "an id with a slash": ({"id": "a/b"}, "id", "should match pattern"),
    "many metadata": ({"metadata": {f"k{i}": "v" for i in range(33)}}, "metadata", "at most 32"),
    "a long metadata key": ({"metadata": {"k" * 65: "v"}}, "metadata", "at most 64"),
    "a long metadata value": ({"metadata": {"k": "v" * 1025}}, "metadata", "at most 1024"),
}


def stream(**changes: Any) -> dict[str, Any]:
    return {"id": "lobby", "url": URL, **changes}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_config_refuses_unbounded_streams(case: str) -> None:
    changes, field, reason = REFUSED[case]
    with pytest.raises(ConfigError) as caught:
        parse_config({"streams": [stream(**changes)]})
    (problem,) = caught.value.problems
    assert problem.path.startswith(f"streams[0].{field}")
    assert reason in problem.reason
    if field != "id":
        assert problem.reason.endswith("(stream 'lobby')")  # each problem names its stream


def test_the_widest_rooms_accepted_make_short_topics() -> None:
    ascii_room = StreamConfig.model_validate(stream(room="r" * MAX_ROOM_LENGTH))
    assert len(Topics("p").alerts(ascii_room.room_id)) == len("p/v1/alerts/") + MAX_ROOM_LENGTH
    widest = StreamConfig.model_validate(stream(room="\U0001f600" * MAX_ROOM_LENGTH))
    level = Topics("p").alerts(widest.room_id).removeprefix("p/v1/alerts/")
    assert len(level.encode()) == 12 * MAX_ROOM_LENGTH  # 1,536 bytes at worst
    assert StreamConfig.model_validate(stream(room="room 1, Zürich #2")).room_id


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path_factory.mktemp("limits-daemon"), "")
    try:
        process.start()
        yield process
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    finally:
        process.close()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_api_refuses_them_naming_the_field(daemon: DaemonProcess, case: str) -> None:
    changes, field, _ = REFUSED[case]
    status, body = daemon.request("POST", "/v1/streams", stream(**changes))
    # Bodies the stream model refuses are 400 invalid_stream (tests/app/test_daemon.py).
    assert status == 400, body
    assert body["error"]["code"] == "invalid_stream"
    assert field in [d["field"].split(".")[0] for d in body["error"]["details"]]
    assert daemon.request("GET", "/v1/streams/lobby")[0] == 404


def test_a_patch_cannot_make_a_room_unbounded(daemon: DaemonProcess) -> None:
    assert daemon.request("POST", "/v1/streams", stream(id="patched"))[0] == 201
    try:
        status, body = daemon.request("PATCH", "/v1/streams/patched", {"room": "#" * 22_000})
        assert status == 400, body
        assert [d["field"] for d in body["error"]["details"]] == ["room"]
        # No room given: the stream is in the room of its id (shown, not left empty).
        assert daemon.request("GET", "/v1/streams/patched")[1]["room"] == "patched"
    finally:
        daemon.request("DELETE", "/v1/streams/patched")
