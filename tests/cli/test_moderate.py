"""``streamguard moderate``: real verdicts and alerts as JSON lines; Ctrl-C keeps the tail."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from streamguard.testing.media_servers import IcecastServer, garbage
from tests.support.media import encode_staircase
from tests.support.media_servers import FixedServer

COMMAND = [sys.executable, "-m", "streamguard", "moderate"]


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_file_gets_real_verdicts_and_alerts(room_mp3: Path) -> None:
    result = subprocess.run(
        [*COMMAND, str(room_mp3), "--segment", "15", "--progress", "always"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = lines_of(result.stdout)
    segments = [line for line in out if line.get("type") == "segment"]
    alerts = [line for line in out if "alert_id" in line]
    assert [s["seq"] for s in segments] == [0, 1, 2]
    assert [s["duration"] for s in segments[:2]] == [15.0, 15.0]
    assert segments[-1]["flags"] == ["partial"]
    verdicts = [s["verdict"] for s in segments]
    assert [v["suggestion"] for v in verdicts] == ["Pass", "Block", "Pass"]
    assert verdicts[1]["label"] == "Abuse"
    assert {k["library_id"] for k in verdicts[1]["keywords"]} >= {"en-threats"}
    assert all("moaning" in v["unsupported"] for v in verdicts)
    assert [a["incident"]["event"] for a in alerts] == ["new", "end"]
    assert alerts[0]["segment"]["id"] == segments[1]["segment_id"]
    assert "100%" in result.stderr  # the progress bar reached the end
    assert "== 3 segment(s) (3 moderated); 1 flagged (1 Block Abuse); 2 alert(s)" in result.stderr


async def test_ctrl_c_on_a_live_stream_still_judges_the_partial_tail(
    tmp_path: Path, room_media: tuple[bytes, float]
) -> None:
    media, seconds = room_media
    async with IcecastServer(media, seconds) as server:  # real-time pace
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            server.url,
            "--segment",
            "15",
            "--progress",
            "always",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        async with asyncio.timeout(120):
            first = json.loads(await process.stdout.readline())
        assert first["seq"] == 0
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            rest, errors = await asyncio.gather(process.stdout.read(), process.stderr.read())
            code = await process.wait()
    assert code == 0, errors.decode()
    segments = [line for line in lines_of(rest.decode()) if line.get("type") == "segment"]
    assert [s["seq"] for s in segments] == [1]
    tail = segments[0]
    assert tail["flags"] == ["partial"]
    assert 0 < tail["duration"] < 15
    assert tail["verdict"]["outcome"] in ("moderated", "no_speech")
    assert "online" in errors.decode()  # the live status line


def test_bad_arguments_get_clear_errors(tmp_path: Path) -> None:
    cases = [
        (["x.wav", "--stream-id", "a b"], "--stream-id: String should match pattern"),
        (["x.wav", "--profile", "kids"], "--profile 'kids' is not one of default"),
        ([str(tmp_path / "missing.wav")], "missing.wav: No such file or directory"),
        (["ftp://127.0.0.1/a.mp3"], "protocol 'ftp' is not allowed"),
    ]
    for arguments, message in cases:
        result = subprocess.run(
            [*COMMAND, *arguments], capture_output=True, text=True, check=False, timeout=60
        )
        assert result.returncode in (1, 2), result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert "Errno" not in result.stderr  # FFmpeg's error numbers mean nothing to a user


async def moderate_url(url: str, *arguments: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``moderate`` on ``url`` served by this test's loop: exit code, lines, stderr."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        url,
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(240):
            out, errors = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, lines_of(out.decode()), errors.decode()


async def test_a_recording_served_over_http_is_judged_once(
    room_media: tuple[bytes, float],
) -> None:
    server = FixedServer("room.mp3", room_media[0], "audio/mpeg")
    async with server:
        code, out, errors = await moderate_url(server.url, "--segment", "15")
    assert code == 0, errors
    segments = [line for line in out if line.get("type") == "segment"]
    assert [s["seq"] for s in segments] == [0, 1, 2]  # once, not again and again
    assert [a["incident"]["event"] for a in out if "alert_id" in a] == ["new", "end"]
    assert server.requests == 1


async def test_an_uppercase_scheme_is_read(tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "tones.mp3", 4).read_bytes()
    server = FixedServer("tones.mp3", media, "audio/mpeg")
    async with server:
        url = server.url.replace("http://", "HTTP://")
        code, out, errors = await moderate_url(url, "--segment", "15")
    assert code == 0, errors
    assert [s["seq"] for s in out if s.get("type") == "segment"] == [0]


def test_random_bytes_named_mp3_exit_non_zero_saying_no_audio_was_decoded(
    tmp_path: Path,
) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(garbage(3, 20_000))
    result = subprocess.run(
        [*COMMAND, str(junk)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 1
    assert f"no audio was decoded from {junk}" in result.stderr
    assert "Traceback" not in result.stderr
