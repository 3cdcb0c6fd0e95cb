"""``check-config`` checks everything ``run`` checks, and names the stream of each problem
(issue 11, item 12): it used to say OK to configs ``run`` then refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HTTP = "http://127.0.0.1:9/live.mp3"

REFUSED: dict[str, tuple[str, list[str]]] = {
    "protocol off the allow-list": (
        f'[ingest]\nallowed_protocols = ["https"]\n[[streams]]\nid = "lobby"\nurl = "{HTTP}"\n',
        ["streams[0].url: protocol 'http' is not allowed", "(stream 'lobby')"],
    ),
    "local file not allowed": (
        '[ingest]\nallow_local_files = false\n[[streams]]\nid = "a"\nurl = "ok.mp3"\n'
        '[[streams]]\nid = "tape"\nurl = "file:///srv/tape.mp3"\n',
        ["streams[0].url: protocol 'file' is not allowed (", "(stream 'a')", "streams[1].url"],
    ),
    "URL without a host": (
        '[[streams]]\nid = "nohost"\nurl = "rtsp:///x"\n',
        ["streams[0].url: source URL 'rtsp:///x' has no host (stream 'nohost')"],
    ),
    "URL that does not parse": (
        '[[streams]]\nid = "v6"\nurl = "http://[::1/x"\n',
        ["streams[0].url: Invalid IPv6 URL (stream 'v6')"],
    ),
    "missing keyword library": (
        '[engine]\ntype = "local"\nlibraries = ["/nonexistent/words.toml"]\n',
        ["engine.libraries: /nonexistent/words.toml: cannot read: No such file or directory"],
    ),
    "model not loadable": (
        '[engine]\ntype = "local"\nmodel = "/nonexistent/whisper-model"\n',
        ["engine.model: whisper model '/nonexistent/whisper-model' cannot be loaded offline"],
    ),
    "AMS without credentials": (
        '[engine]\ntype = "ams"\n',
        ["engine.secret_id: missing", "engine.secret_key: missing"],
    ),
    "profile not defined": (
        f'[[streams]]\nid = "kids"\nurl = "{HTTP}"\nprofile = "strict"\n',
        ["[0].profile 'strict' of stream 'kids' is not defined in profiles"],
    ),
}

NO_SECRETS = {"TENCENTCLOUD_SECRET_ID": "", "TENCENTCLOUD_SECRET_KEY": ""}


def streamguard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **NO_SECRETS}
    env.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "streamguard", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_config_refuses_what_run_refuses(tmp_path: Path, case: str) -> None:
    body, expected = REFUSED[case]
    path = tmp_path / "streamguard.toml"
    path.write_text(f'[instance]\nstate_dir = "{tmp_path / "state"}"\n{body}', encoding="utf-8")
    checked = streamguard("check-config", "-c", str(path), cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout
    for text in expected:
        assert text in checked.stderr
    assert "Traceback" not in checked.stderr
    if case == "model not loadable":
        return  # run loads the model itself when its engine starts, and says so
    ran = streamguard("run", "-c", str(path), cwd=tmp_path)
    assert ran.returncode != 0
    for text in expected:
        assert text in ran.stderr  # the same problem, the same words
    assert "Traceback" not in ran.stderr


def test_check_config_accepts_a_runnable_config(tmp_path: Path) -> None:
    library = tmp_path / "words.toml"
    library.write_text(
        '[[library]]\nid = "house"\nname = "House"\nlabel = "Custom"\nscore = 95\n'
        'keywords = ["free followers"]\n',
        encoding="utf-8",
    )
    path = tmp_path / "streamguard.toml"
    path.write_text(
        f'[engine]\ntype = "local"\nlibraries = ["{library}"]\n'
        f'[[streams]]\nid = "lobby"\nurl = "{HTTP}"\nroom = "Lobby #1"\n',
        encoding="utf-8",
    )
    checked = streamguard("check-config", "-c", str(path), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "OK (1 stream(s), engine local)" in checked.stdout
