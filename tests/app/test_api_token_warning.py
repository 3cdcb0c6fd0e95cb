"""A daemon started without an API token says so at start (a first-run trap otherwise)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.support.daemon import DaemonProcess


def test_no_token_is_warned_about_at_start(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "", env={"STREAMGUARD_API_TOKEN": ""})
    try:
        daemon.start()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    finally:
        daemon.close()
    entries = [json.loads(line) for line in daemon.log_path.read_text().splitlines()]
    warnings = [e["message"] for e in entries if e["level"] == "warning"]
    assert any(m.startswith("the control API has no token") for m in warnings), warnings


def test_a_token_means_no_warning(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "")
    try:
        daemon.start()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    finally:
        daemon.close()
    assert "the control API has no token" not in daemon.log_path.read_text()
