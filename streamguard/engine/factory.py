"""Build the configured engine as an async context manager that owns it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from streamguard.config.engine import AmsEngineConfig, LocalEngineConfig
from streamguard.engine.base import Engine
from streamguard.engine.local import LocalEngine
from streamguard.errors import EngineError

__all__ = ["open_engine"]


@asynccontextmanager
async def open_engine(config: LocalEngineConfig | AmsEngineConfig) -> AsyncIterator[Engine]:
    """Yield the engine ``config`` describes; close it on exit."""
    if isinstance(config, LocalEngineConfig):
        async with LocalEngine(config) as engine:
            yield engine
        return
    raise EngineError("the AMS engine is not available in this build")
