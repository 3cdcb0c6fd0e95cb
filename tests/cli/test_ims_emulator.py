"""``streamguard ims-emulator``: a real process serving signed ImageModeration calls."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from PIL import Image

from streamguard.engines.image.ims import ImsImageEngine
from streamguard.tencentcloud.ims import ImsClient
from streamguard.tencentcloud.signing import Credentials
from streamguard.testing.net import free_port
from streamguard.testing.video import pattern
from tests.cli.test_emulator import wait_for_port

REPO = Path(__file__).resolve().parents[2]
KEYS = Credentials("AKIDimscli", "ims-cli-secret")


async def test_the_command_serves_signed_image_moderation() -> None:
    port = free_port()
    env = {
        **os.environ,
        "TENCENTCLOUD_SECRET_ID": KEYS.secret_id,
        "TENCENTCLOUD_SECRET_KEY": KEYS.secret_key,
        "PYTHONPATH": str(REPO),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamguard", "ims-emulator", "--listen", f"127.0.0.1:{port}",
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_for_port(port, process)
        client = ImsClient(f"http://127.0.0.1:{port}", KEYS, region="ap-guangzhou")
        async with ImsImageEngine(client) as engine:  # opens and closes the client
            [verdict] = await engine.judge([("cli-f00001", pattern(3, 320, 240))])
            out = io.BytesIO()
            Image.fromarray(pattern(3, 320, 240)).save(out, format="PNG")
            answer = await client.image_moderation(
                {"DataId": "cli-2", "FileContent": base64.b64encode(out.getvalue()).decode()}
            )
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            stdout, stderr = await process.communicate()
    assert (verdict.suggestion.value, verdict.label) == ("Pass", "Normal")
    assert (answer["DataId"], answer["Suggestion"]) == ("cli-2", "Pass")
    assert process.returncode == 0, stderr.decode()
    assert b"IMS emulator listening" in stdout
    assert KEYS.secret_key.encode() not in stdout + stderr


def test_without_credentials_the_command_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    result = subprocess.run(
        [sys.executable, "-m", "streamguard", "ims-emulator"],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "TENCENTCLOUD_SECRET_ID" in result.stderr
