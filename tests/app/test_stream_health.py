"""Stream state changes become health events once: down, restored, silent."""

from __future__ import annotations

from streamguard.app.stream_health import StreamHealth
from streamguard.bus.sink import JsonLinesAlerts
from streamguard.core.status import StreamEventKind, StreamState


def events(states: list[str]) -> list[StreamEventKind | None]:
    health = StreamHealth(JsonLinesAlerts(), silent_minutes=5)
    return [health.event("s", StreamState(state)) for state in states]


def test_down_once_and_restored_after_a_restart() -> None:
    got = events(["connecting", "online", "reconnecting", "restarting", "connecting", "online"])
    assert got == [None, None, StreamEventKind.DOWN, None, None, StreamEventKind.RESTORED]


def test_a_silent_room_that_drops_is_down_then_restored() -> None:
    got = events(["online", "silent", "reconnecting", "online"])
    assert got == [None, StreamEventKind.SILENT, StreamEventKind.DOWN, StreamEventKind.RESTORED]


def test_a_clean_stop_is_not_down_and_forgets_the_outage() -> None:
    got = events(["online", "failed", "stopped", "connecting", "online"])
    assert got == [None, StreamEventKind.DOWN, None, None, None]


def test_a_source_that_never_connects_is_down_then_restored_when_it_does() -> None:
    got = events(["connecting", "failing", "failing", "online"])
    assert got == [None, StreamEventKind.DOWN, None, StreamEventKind.RESTORED]
