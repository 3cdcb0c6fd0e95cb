"""Build the configured engine as an async context manager that owns it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from streamguard.config.engine import AmsEngineConfig, LocalEngineConfig
from streamguard.core.supervisor import Supervisor
from streamguard.engines.ams.engine import AmsEngine, LateVerdictHandler
from streamguard.engines.base import Engine
from streamguard.engines.gated import GatedEngine
from streamguard.engines.local import LocalEngine, SpeechGate
from streamguard.state.ams_tasks import AmsTaskStore
from streamguard.state.db import Database

__all__ = ["open_engine"]


@asynccontextmanager
async def open_engine(
    config: LocalEngineConfig | AmsEngineConfig,
    *,
    db: Database,
    state_dir: Path,
    on_late_verdict: LateVerdictHandler | None = None,
    supervisor: Supervisor | None = None,
    tasks: AmsTaskStore | None = None,
) -> AsyncIterator[Engine]:
    """Yield the engine ``config`` describes; close it on exit.

    AMS is behind the speech gate (silent segments are not billed), except in live mode
    where AMS pulls the streams and the engine is the ``LiveEngine`` itself; its task state
    lives in ``db`` so a restart polls what was submitted instead of submitting it again.
    ``on_late_verdict`` receives verdicts nobody waits for any more, with their segment:
    AMS tasks of an earlier run, settled after a restart. AMS's loops run under
    ``supervisor``; ``tasks`` tracks AMS tasks instead of ``db`` (fleet mode: the shared
    store, so another instance settles them).
    """
    if isinstance(config, LocalEngineConfig):
        async with LocalEngine(config) as local:
            yield local
        return
    async with AmsEngine(
        config,
        db,
        state_dir=state_dir,
        on_verdict=on_late_verdict,
        supervisor=supervisor,
        store=tasks,
    ) as ams:
        if ams.live_mode:
            yield ams  # AMS pulls the streams itself: there is no audio here to gate
            return
        gated = GatedEngine(ams, SpeechGate(), pad=config.speech_pad_seconds)
        yield gated
