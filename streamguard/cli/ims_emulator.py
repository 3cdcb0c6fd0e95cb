"""``streamguard ims-emulator --listen HOST:PORT``: the IMS emulator in the foreground.

It answers ImageModeration (2020-12-29) signed with ``$TENCENTCLOUD_SECRET_ID`` /
``$TENCENTCLOUD_SECRET_KEY`` (and ``$TENCENTCLOUD_TOKEN`` when temporary credentials are
emulated), judging pictures with the offline open_nsfw engine. Point an ``[image_engine]
type = "ims"`` config's ``endpoint`` at it for the development loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from streamguard.cli.emulator import _listen
from streamguard.emulator.ims import SYNC_REQUESTS_PER_SECOND, ImsEmulator
from streamguard.engines.image.opennsfw import OpenNsfwEngine

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``ims-emulator`` subcommand."""
    parser = subparsers.add_parser(
        "ims-emulator",
        help="run the IMS 2020-12-29 (ImageModeration) emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 8781), help="HOST:PORT")
    parser.add_argument(
        "--requests-per-second", type=float, default=SYNC_REQUESTS_PER_SECOND, help="per SecretId"
    )
    parser.set_defaults(run=run)


async def serve(emulator: ImsEmulator) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with emulator:
        print(f"IMS emulator listening on {emulator.url} (engine opennsfw)", flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Run until interrupted; 2 without credentials."""
    secret_id = os.environ.get("TENCENTCLOUD_SECRET_ID", "").strip()
    secret_key = os.environ.get("TENCENTCLOUD_SECRET_KEY", "").strip()
    if not secret_id or not secret_key:
        print(
            "streamguard ims-emulator: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY: "
            "the emulator accepts requests signed with that pair",
            file=sys.stderr,
        )
        return 2
    token = os.environ.get("TENCENTCLOUD_TOKEN", "").strip()
    host, port = args.listen
    emulator = ImsEmulator(
        OpenNsfwEngine(),
        keys={secret_id: secret_key},
        tokens={secret_id: token} if token else {},
        host=host,
        port=port,
        requests_per_second=args.requests_per_second,
    )
    asyncio.run(serve(emulator))
    return 0
