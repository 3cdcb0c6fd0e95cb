"""``streamguard emulator --listen HOST:PORT``: run the AMS emulator in the foreground; it
answers Tencent IMS (ImageModeration, CreateImageModerationAsyncTask) on the same port,
judging pictures by marker colours (``emulator/ims_images.py``).

Credentials come from ``$TENCENTCLOUD_SECRET_ID`` / ``$TENCENTCLOUD_SECRET_KEY`` (and
``$TENCENTCLOUD_TOKEN`` when temporary credentials are emulated). Slices are judged by the
engine that ``--engine MODULE:FACTORY`` names (a no-argument callable returning an Engine).
Fault flags switch the emulator's misbehaviour for this run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from streamguard.emulator import AmsEmulator, EmulatorOptions, Faults
from streamguard.engines.base import Engine

__all__ = ["register"]

DEFAULT_ENGINE = "streamguard.engines.local:LocalEngine"


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share within 0..1, got {text}")
    return value


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def register(subparsers: Any) -> None:
    """Add the ``emulator`` subcommand."""
    parser = subparsers.add_parser(
        "emulator",
        help="run the AMS 2020-12-29 emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 8779), help="HOST:PORT")
    parser.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        help=f"MODULE:FACTORY building the Engine that judges slices (default {DEFAULT_ENGINE})",
    )
    parser.add_argument("--slice-seconds", type=int, choices=(15, 30, 60), default=30)
    parser.add_argument(
        "--processing-factor",
        type=float,
        default=0.25,
        help="seconds of processing per second of audio (AMS is about 4x real time)",
    )
    parser.add_argument("--requests-per-second", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=10, help="on-demand tasks at once")
    parser.add_argument("--live-concurrency", type=int, default=100, help="live tasks at once")
    parser.add_argument(
        "--full-callbacks", action="store_true", help="call back for every slice, not only hits"
    )
    faults = parser.add_argument_group("fault injection (shares of requests or tasks, 0..1)")
    faults.add_argument("--throttle", type=_share, default=0.0, help="RequestLimitExceeded")
    faults.add_argument("--server-errors", type=_share, default=0.0, help="HTTP 503")
    faults.add_argument("--internal-errors", type=_share, default=0.0, help="InternalError")
    faults.add_argument("--hangs", type=_share, default=0.0, help="answers held back 60 s")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to answers")
    faults.add_argument("--stuck", type=_share, default=0.0, help="tasks stuck RUNNING")
    faults.add_argument("--error-tasks", type=_share, default=0.0, help="tasks ending ERROR")
    faults.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    parser.set_defaults(run=run)


def build_options(args: argparse.Namespace, env: Mapping[str, str]) -> EmulatorOptions:
    """Emulator options from the flags and the environment's credentials."""
    secret_id = env.get("TENCENTCLOUD_SECRET_ID", "").strip()
    secret_key = env.get("TENCENTCLOUD_SECRET_KEY", "").strip()
    if not secret_id or not secret_key:
        raise ValueError(
            "set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY: the emulator accepts "
            "requests signed with that pair"
        )
    token = env.get("TENCENTCLOUD_TOKEN", "").strip()
    return EmulatorOptions(
        keys={secret_id: secret_key},
        tokens={secret_id: token} if token else {},
        slice_seconds=args.slice_seconds,
        processing_factor=args.processing_factor,
        requests_per_second=args.requests_per_second,
        ondemand_concurrency=args.concurrency,
        live_concurrency=args.live_concurrency,
        full_callbacks=args.full_callbacks,
    )


def build_faults(args: argparse.Namespace) -> Faults:
    """The faults the flags switch on."""
    return Faults(
        throttle=args.throttle,
        server_errors=args.server_errors,
        internal_errors=args.internal_errors,
        hangs=args.hangs,
        latency=args.latency,
        stuck=args.stuck,
        errors=args.error_tasks,
        seed=args.fault_seed,
    )


def load_engine(spec: str) -> Engine:
    """Build the engine named ``MODULE:FACTORY``; ValueError saying why when it cannot."""
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        raise ValueError(f"--engine must be MODULE:FACTORY, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--engine {spec}: cannot load it ({exc})") from exc
    engine = factory()
    if not isinstance(engine, Engine):
        raise ValueError(f"--engine {spec}: {type(engine).__name__} is not an Engine")
    return engine


async def serve(
    engine: Engine, options: EmulatorOptions, faults: Faults, host: str, port: int
) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with AmsEmulator(engine, options, faults, host=host, port=port) as emulator:
            print(
                f"AMS emulator (and IMS) listening on {emulator.url} (engine {engine.name})",
                flush=True,
            )
            await stop.wait()
    finally:
        await engine.aclose()


def run(args: argparse.Namespace) -> int:
    """Run the emulator until interrupted; 2 on bad flags or missing credentials."""
    try:
        options = build_options(args, os.environ)
        faults = build_faults(args)
        engine = load_engine(args.engine)
    except ValueError as exc:
        print(f"streamguard emulator: {exc}", file=sys.stderr)
        return 2
    host, port = args.listen
    asyncio.run(serve(engine, options, faults, host, port))
    return 0
