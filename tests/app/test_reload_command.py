"""``streamguard reload`` (the units' ExecReload): RELOADING=1, then the result, waited for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.daemon import DaemonProcess

KIDS = '[profiles.default]\n[profiles.kids]\nmin_risk = "low"\n'
STREAM = '[[streams]]\nid = "kid-room"\nurl = "http://127.0.0.1:9/live.mp3"\nprofile = "kids"\n'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path_factory.mktemp("reload-command"), KIDS + STREAM)
    try:
        process.start()
        yield process
    finally:
        process.close()


def reload(daemon: DaemonProcess) -> subprocess.CompletedProcess[str]:
    assert daemon.process is not None
    command = [sys.executable, "-m", "streamguard", "reload", "-c", str(daemon.config_path)]
    return subprocess.run(
        [*command, "--pid", str(daemon.process.pid), "--timeout", "60"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_good_file_is_reloaded_and_systemd_sees_it_begin_and_end(daemon: DaemonProcess) -> None:
    daemon.messages.clear()
    daemon.write_config(KIDS + '[profiles.teens]\nmin_risk = "high"\n' + STREAM)
    done = reload(daemon)
    assert done.returncode == 0, done.stderr
    assert "reloaded: 1 stream(s)" in done.stderr
    begun = daemon.messages.index("RELOADING=1")
    assert daemon.messages[begun + 1].startswith("MONOTONIC_USEC=")
    assert "READY=1" in daemon.messages[begun:]
    assert "STATUS=reloaded: 1 stream(s)" in daemon.messages[begun:]


def test_a_refused_reload_fails_and_the_daemon_keeps_its_config(daemon: DaemonProcess) -> None:
    daemon.write_config('[profiles.default]\n[[streams]]\nid = "other"\nurl = "x.wav"\n')
    done = reload(daemon)
    assert done.returncode == 1
    assert "reload refused: profiles in use were removed" in done.stderr
    status, streams = daemon.request("GET", "/v1/streams")
    assert status == 200
    assert [s["id"] for s in streams["streams"]] == ["kid-room"]


def test_a_file_that_does_not_load_is_not_even_sent(daemon: DaemonProcess) -> None:
    daemon.messages.clear()
    daemon.config_path.write_text("[ingest\n", encoding="utf-8")
    done = reload(daemon)
    assert done.returncode == 78
    assert "not valid TOML" in done.stderr
    assert "RELOADING=1" not in daemon.messages
    assert daemon.request("GET", "/healthz", token=None)[0] == 200
