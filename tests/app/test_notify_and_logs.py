"""systemd notify datagrams and structured log lines."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

from streamguard.app.notify import Notifier
from streamguard.core.logs import configure_logging, stream_logger


def test_notifier_sends_datagrams_to_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_interval == 2.0
        notifier.ready("2 streams")
        notifier.stopping()
        assert server.recv(4096).decode().splitlines() == ["READY=1", "STATUS=2 streams"]
        assert server.recv(4096).decode().splitlines() == ["STOPPING=1", "STATUS=stopping"]


def test_notifier_is_silent_without_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("nobody listens")  # must not raise


def test_watchdog_for_another_pid_is_not_ours() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval is None


def test_json_log_lines_carry_the_bound_stream_id() -> None:
    out = io.StringIO()
    configure_logging("INFO", out)
    log = stream_logger(logging.getLogger("streamguard.test"), "room-9")
    log.warning("reconnecting after %s", "EOF", extra={"attempt": 3})
    entry = json.loads(out.getvalue())
    assert entry["message"] == "reconnecting after EOF"
    assert entry["stream_id"] == "room-9"
    assert entry["attempt"] == 3
    assert entry["level"] == "warning"


def test_notifier_never_blocks_when_nobody_reads(tmp_path: Path) -> None:
    path = tmp_path / "full.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        for _ in range(10_000):  # far more than a socket buffer holds
            notifier.send("WATCHDOG=1")
        assert server.recv(4096) == b"WATCHDOG=1"
