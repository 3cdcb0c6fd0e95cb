"""Every way reading or parsing a config can fail is a ``ConfigError`` (issue 11, item 2).

``check-config`` prints it and exits 1, never a traceback; a SIGHUP with such a file keeps
the daemon and its old config.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamguard.config import load_config, parse_config
from streamguard.config.loading import MAX_CONFIG_BYTES
from streamguard.core.errors import ConfigError
from tests.support.daemon import DaemonProcess

DEEP = 5_000

BROKEN_FILES: dict[str, tuple[bytes, str]] = {
    "not UTF-8": (
        b'[instance]\nid = "caf\xe9"\n',
        "not UTF-8: byte 0xe9 at line 2, column 10",
    ),
    "deep arrays": (
        b"x = " + b"[" * DEEP + b"]" * DEEP + b"\n",
        "nested more than 32 levels deep",
    ),
    "deep inline tables": (
        b"x = " + b"{a = " * DEEP + b"1" + b"}" * DEEP + b"\n",
        "nested more than 32 levels deep",
    ),
    "deep dotted keys": (
        b"x" + b".a" * DEEP + b" = 1\n",
        "nested more than 32 levels deep",
    ),
    "too large": (
        b"# " + b"x" * MAX_CONFIG_BYTES + b"\n",
        f"at most {MAX_CONFIG_BYTES} allowed",
    ),
    "NUL byte": (b"[ingest]\x00\n", "not valid TOML"),
}


def check_config(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamguard", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_broken_files_are_config_errors(tmp_path: Path, case: str) -> None:
    raw, expected = BROKEN_FILES[case]
    path = tmp_path / "broken.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert expected in str(caught.value)
    result = check_config(path)
    assert result.returncode == 1
    assert f"{path}: " in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_what_cannot_be_read_is_named(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading would block until a writer came: refused without reading
    cases = {
        tmp_path / "missing.toml": "cannot read: No such file or directory",
        tmp_path: "is a directory, not a config file",
        fifo: "is not a regular file",
        tmp_path / "missing" / "x.toml": "cannot read: No such file or directory",
    }
    for path, expected in cases.items():
        result = check_config(path)
        assert result.returncode == 1, path
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text("", encoding="utf-8")
    path.chmod(0)
    result = check_config(path)
    assert result.returncode == 1
    assert "cannot read: Permission denied" in result.stderr


def test_a_credential_that_is_not_utf8_is_named_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api-token").write_bytes(b"s3cr\xffet")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    with pytest.raises(ConfigError) as caught:
        parse_config({})
    assert str(caught.value) == (
        f"{credentials / 'api-token'}: not UTF-8 (invalid byte at offset 4)"
    )
    config = tmp_path / "ok.toml"
    config.write_text("", encoding="utf-8")
    result = check_config(config, CREDENTIALS_DIRECTORY=str(credentials))
    assert result.returncode == 1
    assert "not UTF-8" in result.stderr
    assert "s3cr" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path_factory.mktemp("reload-daemon"), "")
    try:
        process.start()
        yield process
    finally:
        process.close()


@pytest.mark.parametrize("case", ["not UTF-8", "deep arrays", "deep inline tables"])
def test_sighup_with_a_broken_file_keeps_the_daemon_and_its_config(
    daemon: DaemonProcess, case: str
) -> None:
    raw, _ = BROKEN_FILES[case]
    daemon.messages.clear()
    daemon.config_path.write_bytes(raw)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_message("STATUS=reload refused: 1 problem(s)", 30)
    assert daemon.process is not None
    assert daemon.process.poll() is None
    assert daemon.request("GET", "/v1/streams")[0] == 200
