"""The AMS emulator: an aiohttp service that speaks AMS 2020-12-29 (spec §6).

It checks TC3 signatures, validates parameters with the spec's error codes, limits request
rate (per SecretId and action) and task concurrency, runs each task PENDING → RUNNING → FINISH/ERROR
(or CANCELLED): it downloads the task's audio from its URL, decodes it with PyAV into
15/30/60 s slices and judges each slice with any ``Engine``. Callbacks carry
``X-Signature`` when a Seed was given. ``Faults`` inject throttling, 5xx, latency, hung
answers, stuck and ERROR tasks.

``AmsEmulator`` puts the parts together and owns them (``async with``); ``create_app``
gives a bare ``web.Application`` for ``web.run_app`` (the CLI). The parts:

- ``front``: the HTTP front any TC3 API shares (auth, version, rate limit, request faults,
  envelope);
- ``actions``: the five AMS actions;
- ``runner``: the task queue and workers, downloading (``media``) and judging (``judging``)
  each task's audio;
- ``callbacks``: delivery to CallbackUrl, retried by a ``Backoff``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from aiohttp import web

from streamguard.core.serving import start_site
from streamguard.emulator.actions import API_VERSION, SERVICE, AmsActions
from streamguard.emulator.callbacks import CallbackSender
from streamguard.emulator.faults import Faults
from streamguard.emulator.front import ApiFront
from streamguard.emulator.ims_options import ImsOptions
from streamguard.emulator.ims_service import ImsService, by_service
from streamguard.emulator.judging import SliceJudge
from streamguard.emulator.live import pull_settings
from streamguard.emulator.media import MediaReader
from streamguard.emulator.options import EmulatorOptions, EmulatorStats
from streamguard.emulator.runner import TaskRunner
from streamguard.emulator.tasks import EmulatedTask
from streamguard.engines.base import Engine

__all__ = ["EMULATOR_KEY", "AmsEmulator", "EmulatorOptions", "EmulatorStats", "create_app"]

EMULATOR_KEY: web.AppKey[AmsEmulator] = web.AppKey("ams_emulator")


class AmsEmulator:
    """The emulator service: ``async with AmsEmulator(engine, options, host=..., port=...)``.

    ``faults`` may be replaced at any time; ``tasks`` and ``stats`` are for inspection.
    ``clock`` is the server's wall clock (signature expiry, task times); ``monotonic`` paces
    the rate limit.
    """

    def __init__(
        self,
        engine: Engine,
        options: EmulatorOptions,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.options = options
        self.faults = faults or Faults()
        self.host = host
        self.port = port
        self.tasks: dict[str, EmulatedTask] = {}
        self.stats = EmulatorStats()
        self._clock = clock
        self._media = MediaReader(
            slice_seconds=options.slice_seconds,
            timeout=options.download_timeout,
            max_bytes=options.max_download_bytes,
            threads=options.ondemand_concurrency + 2,
        )
        self._callbacks = CallbackSender(
            self.stats, full=options.full_callbacks, shapes=lambda: self.faults.shapes
        )
        judge = SliceJudge(engine, options.processing_factor)
        self._runner = TaskRunner(
            self._media,
            judge,
            self._callbacks,
            self.stats,
            now=self._now,
            workers=options.ondemand_concurrency,
            language=options.language,
            live_settings=pull_settings(
                timeout=options.download_timeout, reconnects=options.live_reconnects
            ),
            slice_seconds=options.slice_seconds,
        )
        self._front = self._serve(judge, clock, monotonic)
        self._site: web.AppRunner | None = None
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app[EMULATOR_KEY] = self
        self.ims = ImsService(
            ImsOptions(options.keys, options.tokens), clock=clock, monotonic=monotonic
        )
        """IMS on the same port, told apart by the service its requests are signed for."""
        route = by_service({"ims": self.ims.handle}, self._front.handle)
        self.app.router.add_route("*", "/", route)
        self.app.cleanup_ctx.append(self._lifecycle)
        self.app.cleanup_ctx.append(self.ims.lifecycle)

    def _serve(
        self, judge: SliceJudge, clock: Callable[[], float], monotonic: Callable[[], float]
    ) -> ApiFront:
        """The AMS actions behind the HTTP front."""
        actions = AmsActions(
            self.tasks,
            self.stats,
            self.options,
            self._runner,
            self._media,
            judge,
            faults=self._current_faults,
            now=self._now,
        )
        return ApiFront(
            SERVICE,
            API_VERSION,
            actions.table(),
            self.stats,
            keys=self.options.keys,
            tokens=self.options.tokens,
            requests_per_second=self.options.requests_per_second,
            action_rates=self.options.action_rates,
            faults=self._current_faults,
            clock=clock,
            monotonic=monotonic,
        )

    @property
    def url(self) -> str:
        """The endpoint to give an ``AmsClient``."""
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._site, self.port = await start_site(self.app, self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        site, self._site = self._site, None
        if site is not None:
            self._front.close()  # release hung answers so the server can shut down
            await site.cleanup()

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._media)
            await stack.enter_async_context(self._callbacks)
            await stack.enter_async_context(self._runner)
            self._front.open()
            stack.callback(self._front.close)
            yield

    def release_stuck(self) -> int:
        """Let every stuck task run after all (as if AMS recovered); returns how many."""
        return self._runner.release_stuck(self.tasks.values())

    def _current_faults(self) -> Faults:
        """Read at every use: ``faults`` may be replaced while the emulator runs."""
        return self.faults

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def create_app(
    engine: Engine, options: EmulatorOptions, faults: Faults | None = None
) -> web.Application:
    """A ``web.Application`` serving the emulator (its workers start and stop with the app)."""
    return AmsEmulator(engine, options, faults).app
