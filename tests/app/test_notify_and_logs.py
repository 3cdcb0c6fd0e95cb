"""systemd notify datagrams and structured log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamguard.app.notify import Notifier
from streamguard.bus.sink import JsonLinesAlerts
from streamguard.config.policy import ProfileConfig
from streamguard.core.logs import configure_logging, stream_logger
from streamguard.core.verdict import Outcome
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.testing.alerts import risky, segment, stream


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


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``configure_logging`` changes the process's logging: put it back for later tests."""
    root, ours = logging.getLogger(), logging.getLogger("streamguard")
    saved = (root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate = saved


@pytest.mark.usefixtures("restore_logging")
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


@pytest.mark.usefixtures("restore_logging")
def test_library_lines_and_warnings_are_json_too() -> None:
    out = io.StringIO()
    configure_logging("INFO", out)
    logging.getLogger("aiohttp.server").error("Error handling request from %s", "127.0.0.1")
    logging.getLogger("aiohttp.access").info("below warning: not written")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something is deprecated", DeprecationWarning, stacklevel=1)
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["logger"], e["level"]) for e in entries] == [
        ("aiohttp.server", "error"),
        ("py.warnings", "warning"),
    ]
    assert "something is deprecated" in entries[1]["message"]


@pytest.mark.usefixtures("restore_logging")
def test_configuring_twice_writes_each_line_once() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", first)
    configure_logging("INFO", second)
    logging.getLogger("streamguard.test").warning("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


@pytest.mark.usefixtures("restore_logging")
def test_passwords_in_urls_are_masked_in_every_part_of_a_line() -> None:
    out = io.StringIO()
    configure_logging("INFO", out)
    log = stream_logger(logging.getLogger("streamguard.test"), "room-9")
    url = "http://alice:s3cret@127.0.0.1:9/live.mp3"
    try:
        raise OSError(f"cannot open {url}")
    except OSError:
        log.exception("stream failed: %s", url, extra={"url": url, "urls": [url]})
    line = out.getvalue()
    assert "s3cret" not in line
    entry = json.loads(line)
    assert entry["message"] == "stream failed: http://alice:***@127.0.0.1:9/live.mp3"
    assert entry["url"] == entry["urls"][0] == "http://alice:***@127.0.0.1:9/live.mp3"
    assert "cannot open http://alice:***@127.0.0.1:9/live.mp3" in entry["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_for_a_terminal_are_masked_too() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    configure_logging("INFO", out)
    logging.getLogger("streamguard.test").warning("open rtsp://cam:pw@127.0.0.1/s")
    assert "rtsp://cam:***@127.0.0.1/s" in out.getvalue()
    assert ":pw@" not in out.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_lines_carry_the_journal_priority_when_stderr_is_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal-stream"
    with path.open("w", encoding="utf-8") as out:
        status = os.fstat(out.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        configure_logging("INFO", out)
        logging.getLogger("streamguard.test").info("alert raised")
        logging.getLogger("aiohttp.server").error("handler failed")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line[:3] for line in lines] == ["<6>", "<3>", "<4>"]
    assert [json.loads(line[3:])["logger"] for line in lines] == [
        "streamguard.test",
        "aiohttp.server",
        "py.warnings",
    ]


@pytest.mark.usefixtures("restore_logging")
def test_no_priority_prefix_when_stderr_is_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # someone else's stream: stderr was redirected
    path = tmp_path / "redirected"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("INFO", out)
        logging.getLogger("streamguard.test").warning("plain")
    assert json.loads(path.read_text(encoding="utf-8"))["message"] == "plain"


async def test_an_info_line_per_alert_raised_and_per_segment_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streamguard.bus.sink")
    sink = JsonLinesAlerts(io.StringIO(), io.StringIO())
    async with Alerting({"default": ProfileConfig()}, sink, instance_id="cli") as alerting:
        seg, failed = segment(), segment(seq=1)
        await Outcomes(alerting.profiles, alerting).handle(stream(), seg, risky(seg), None)
        verdict = risky(failed, outcome=Outcome.FAILED, reason="engine timed out")
        await Outcomes(alerting.profiles, alerting).handle(stream(), failed, verdict, None)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "alert raised: new Abuse high in room room-1") in lines
    assert ("INFO", "segment failed: engine timed out") in lines
    assert sink.raised.counts[("Abuse", "high")] == 2  # new, then end
