"""The AMS stack on loopback for tests: emulator, clip server, client without backoff sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from streamguard.config.engine import AmsEngineConfig
from streamguard.emulator.app import AmsEmulator, EmulatorOptions
from streamguard.emulator.faults import Faults
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.engine import AmsEngine
from streamguard.state.db import Database
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.signing import Credentials
from streamguard.testing.engines import ToneEngine

__all__ = ["KEYS", "SECRET_ID", "SECRET_KEY", "AmsStack", "ams_stack", "engine_config", "no_sleep"]

SECRET_ID = "AKIDstreamguardTEST0000000000000"
SECRET_KEY = "streamguard-test-secret-key-0000"
KEYS = {SECRET_ID: SECRET_KEY}
CREDENTIALS = Credentials(SECRET_ID, SECRET_KEY)


class Sleeps:
    """An injected sleep that returns at once and remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def no_sleep() -> Sleeps:
    return Sleeps()


def engine_config(endpoint: str, **overrides: Any) -> AmsEngineConfig:
    """An AmsEngineConfig for tests: small intervals so nothing waits long."""
    values: dict[str, Any] = {
        "endpoint": endpoint,
        "secret_id": SecretStr(SECRET_ID),
        "secret_key": SecretStr(SECRET_KEY),
        "requests_per_second": 500.0,
        "batch_window": 0.05,
        "processing_ratio": 0.001,
        "poll_interval": 0.05,
        "poll_interval_max": 0.2,
        "task_deadline": 30.0,
        "callback_grace": 0.2,
        "request_timeout": 2.0,
        "biz_type": "streamguard_test",
    }
    values.update(overrides)
    return AmsEngineConfig(**values)


@dataclass
class AmsStack:
    """Everything a test of the AMS path needs, all real and on loopback."""

    emulator: AmsEmulator
    clips: ClipServer
    client: AmsClient
    judge: ToneEngine
    sleeps: Sleeps

    @property
    def creates(self) -> int:
        return self.emulator.stats.handled["CreateAudioModerationTask"]


@asynccontextmanager
async def ams_stack(
    clips_dir: Path,
    faults: Faults | None = None,
    *,
    options: dict[str, Any] | None = None,
    request_timeout: float = 2.0,
    attempts: int = 5,
) -> AsyncIterator[AmsStack]:
    """Start emulator + clip server + client; ``faults`` switch the emulator's misbehaviour."""
    judge = ToneEngine()
    sleeps = no_sleep()
    settings: dict[str, Any] = {"slice_seconds": 15, "processing_factor": 0.0, **(options or {})}
    emulator_options = EmulatorOptions(keys=KEYS, **settings)
    async with AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(
            AmsEmulator(judge, emulator_options, faults, host="127.0.0.1", port=0)
        )
        clips = await stack.enter_async_context(ClipServer(clips_dir, b"test-url-key"))
        client = await stack.enter_async_context(
            AmsClient(
                emulator.url,
                CREDENTIALS,
                requests_per_second=500.0,
                timeout=aiohttp.ClientTimeout(total=request_timeout),
                retry=RetryPolicy(attempts=attempts, total_seconds=60.0),
                sleep=sleeps,
            )
        )
        yield AmsStack(emulator, clips, client, judge, sleeps)


def engine_for(stack: AmsStack, db: Database, **overrides: Any) -> AmsEngine:
    """An ``AmsEngine`` on ``stack``'s emulator, client and clip server (``overrides``: config)."""
    return AmsEngine(
        engine_config(stack.emulator.url, **overrides), db, client=stack.client, clips=stack.clips
    )
