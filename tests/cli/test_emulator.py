"""``streamguard emulator``: a real process serving signed AMS calls, and IMS calls on the
same port; flags switch faults."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from streamguard.cli import emulator as cli
from streamguard.core.backoff import Backoff
from streamguard.emulator.ims_samples import picture
from streamguard.engines.ims.engine import ImsImageEngine
from streamguard.tencentcloud.client import AmsClient
from streamguard.tencentcloud.ims_client import ImsClient
from streamguard.tencentcloud.models import DescribeTasksRequest
from streamguard.testing.net import free_port
from tests.support.ams import CREDENTIALS, SECRET_ID, SECRET_KEY

REPO = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["emulator", *argv])


def test_flags_become_options_and_faults() -> None:
    args = parse(
        "--listen", "0.0.0.0:9000", "--slice-seconds", "15", "--throttle", "0.3",
        "--stuck", "0.1", "--latency", "0.5", "--error-tasks", "0.2",
    )  # fmt: skip
    options = cli.build_options(
        args, {"TENCENTCLOUD_SECRET_ID": "id", "TENCENTCLOUD_SECRET_KEY": "key"}
    )
    faults = cli.build_faults(args)
    assert args.listen == ("0.0.0.0", 9000)
    assert (options.slice_seconds, dict(options.keys)) == (15, {"id": "key"})
    assert (faults.throttle, faults.stuck, faults.latency, faults.errors) == (0.3, 0.1, 0.5, 0.2)


def test_missing_credentials_and_bad_flags_are_clear_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError, match="TENCENTCLOUD_SECRET_ID"):
        cli.build_options(parse(), {})
    with pytest.raises(SystemExit):
        parse("--throttle", "2")
    assert "share within 0..1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cannot load"):
        cli.load_engine("streamguard.testing.engines:Nothing")


async def wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    backoff = Backoff(initial=0.05, maximum=0.5)
    async with asyncio.timeout(30):
        attempts = 0
        while True:
            assert process.returncode is None, "the emulator exited early"
            attempts += 1
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(backoff.delay(attempts))
                continue
            writer.close()
            await writer.wait_closed()
            return


async def test_the_command_serves_signed_calls() -> None:
    port = free_port()
    env = {
        **os.environ,
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "PYTHONPATH": str(REPO),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamguard", "emulator", "--listen", f"127.0.0.1:{port}",
        "--engine", "streamguard.testing.engines:ToneEngine",
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_for_port(port, process)
        async with AmsClient(f"http://127.0.0.1:{port}", CREDENTIALS) as client:
            page = await client.describe_tasks(DescribeTasksRequest(limit=3))
        async with ImsClient(f"http://127.0.0.1:{port}", CREDENTIALS) as ims:
            blocked, clean = await ImsImageEngine(ims).judge(
                [("cli-f1", picture(320, 240, (255, 0, 0))), ("cli-f2", picture(320, 240))]
            )
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            out, err = await process.communicate()
    assert page.total == 0
    assert page.request_id
    assert (blocked.suggestion.value, blocked.label) == ("Block", "Porn")
    assert (clean.suggestion.value, clean.label) == ("Pass", "Normal")
    assert process.returncode == 0, err.decode()
    assert b"AMS emulator (and IMS) listening" in out
    assert SECRET_KEY.encode() not in out + err
