"""The AMS emulator: an aiohttp service that speaks AMS 2020-12-29 (spec §6).

It checks TC3 signatures, validates parameters with the spec's error codes, limits request
rate (per SecretId) and task concurrency, runs each task PENDING → RUNNING → FINISH/ERROR
(or CANCELLED): it downloads the task's audio from its URL, decodes it with PyAV into
15/30/60 s slices and judges each slice with any ``Engine``. Callbacks carry
``X-Signature`` when a Seed was given. ``Faults`` inject throttling, 5xx, latency, hung
answers, stuck and ERROR tasks.

``AmsEmulator`` owns everything (``async with``); ``create_app`` gives a bare
``web.Application`` for ``web.run_app`` (the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, BinaryIO, Self

import aiohttp
import numpy as np
from aiohttp import web

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.errors import StreamGuardError
from streamguard.core.segment import Segment
from streamguard.core.serving import start_site
from streamguard.core.verdict import Outcome, Verdict
from streamguard.emulator.auth import AuthFailure, verify
from streamguard.emulator.faults import Faults, RequestFault, TaskFault
from streamguard.emulator.media import DecodeFailure, decode_slices
from streamguard.emulator.tasks import TERMINAL, EmulatedTask, audio_result, new_task_id
from streamguard.emulator.validation import (
    ApiError,
    check_create,
    check_describe_tasks,
    check_sync,
    check_task_id,
    page_token,
)
from streamguard.engines.base import Engine
from streamguard.tencentcloud.ratelimit import RateLimiter
from streamguard.tencentcloud.signing import callback_signature

__all__ = ["EMULATOR_KEY", "AmsEmulator", "EmulatorOptions", "EmulatorStats", "create_app"]

API_VERSION = "2020-12-29"
SLICE_CHOICES = (15, 30, 60)
SYNC_MAX_SECONDS = 60.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmulatorOptions:
    """How the emulator behaves; the defaults are the real service's documented limits."""

    keys: Mapping[str, str]
    """SecretId → SecretKey accepted."""
    tokens: Mapping[str, str] = field(default_factory=dict)
    """SecretId → STS token it must present (X-TC-Token), for temporary credentials."""
    slice_seconds: int = 30
    """The console's slice length (15, 30 or 60 s; AMS default 30)."""
    processing_factor: float = 0.25
    """Seconds of processing per second of audio (AMS: about 4x real time)."""
    requests_per_second: float = 20.0
    ondemand_concurrency: int = 10
    """On-demand (AUDIO) tasks judged at once; more wait, newest first."""
    live_concurrency: int = 100
    """LIVE_AUDIO tasks running at once; more are refused (RequestLimitExceeded)."""
    full_callbacks: bool = False
    """Call back for every slice, not only those that hit."""
    download_timeout: float = 10.0
    max_download_bytes: int = 500 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.slice_seconds not in SLICE_CHOICES:
            raise ValueError(f"slice_seconds must be 15, 30 or 60, got {self.slice_seconds}")
        if not self.keys:
            raise ValueError("the emulator needs at least one SecretId/SecretKey pair")


@dataclass
class EmulatorStats:
    """What the emulator saw: for tests and the benchmark."""

    calls: Counter[str] = field(default_factory=Counter)
    """Requests that reached an action (after auth), by action, faults included."""
    handled: Counter[str] = field(default_factory=Counter)
    """Requests an action actually carried out, by action."""
    tasks_by_data_id: Counter[str] = field(default_factory=Counter)
    """Tasks created per DataId: more than one is a re-submission (billed again)."""
    billed_seconds: float = 0.0
    """Audio judged (what AMS bills), across all tasks and sync calls."""
    callbacks: int = 0


class _HttpFault(Exception):
    """Answer with a bare HTTP error instead of an envelope (a failing proxy)."""


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
        self._monotonic = monotonic
        self._limiters: dict[str, RateLimiter] = {}
        self._queue: asyncio.LifoQueue[EmulatedTask] = asyncio.LifoQueue()
        self._live_stops: dict[str, threading.Event] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app[EMULATOR_KEY] = self
        self.app.router.add_route("*", "/", self._handle)
        self.app.cleanup_ctx.append(self._lifecycle)

    @property
    def url(self) -> str:
        """The endpoint to give an ``AmsClient``."""
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._runner, self.port = await start_site(self.app, self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            self._closing.set()  # release hung answers so the server can shut down
            await runner.cleanup()

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self._closing = asyncio.Event()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.options.download_timeout)
        )
        self._executor = ThreadPoolExecutor(
            max_workers=self.options.ondemand_concurrency + self.options.live_concurrency + 2,
            thread_name_prefix="ams-emulator.decode",
        )
        for index in range(self.options.ondemand_concurrency):
            self._spawn(self._worker(), f"ams-emulator.worker[{index}]")
        try:
            yield
        finally:
            self._closing.set()
            for stop in self._live_stops.values():
                stop.set()
            tasks = list(self._background)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._session.close()
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run(), name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def release_stuck(self) -> int:
        """Let every stuck task run after all (as if AMS recovered); returns how many."""
        stuck = [
            t for t in self.tasks.values() if t.fault is TaskFault.STUCK and t.status == "RUNNING"
        ]
        for task in stuck:
            task.fault = None
            task.status = "PENDING"
            self._queue.put_nowait(task)
        return len(stuck)

    # --- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)
        try:
            answer = await self._dispatch(request)
        except (ApiError, AuthFailure) as exc:
            answer = {"Error": {"Code": exc.code, "Message": exc.message}}
        except _HttpFault as exc:
            return web.Response(status=503, text=str(exc), content_type="text/html")
        envelope = {"Response": {**answer, "RequestId": request_id}}
        # Exactly "application/json", no charset: the official SDKs parse errors only then.
        body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
        return web.Response(body=body, content_type="application/json")

    async def _dispatch(self, request: web.Request) -> dict[str, Any]:
        if request.method != "POST":
            raise ApiError(
                "UnsupportedProtocol", "The emulator accepts POST / with a JSON body only."
            )
        body = await request.read()
        action = request.headers.get("X-TC-Action", "")
        if not action:
            raise ApiError(
                "MissingParameter", "The request is missing a required header `X-TC-Action`."
            )
        secret_id = verify(
            request.headers, body, self.options.keys, self._clock(), self.options.tokens
        )
        version = request.headers.get("X-TC-Version", "")
        if version != API_VERSION:
            raise ApiError(
                "NoSuchVersion", f"The API version `{version}` does not exist; use {API_VERSION}."
            )
        handler = self._actions().get(action)
        if handler is None:
            raise ApiError("InvalidAction", f"The action `{action}` does not exist.")
        self.stats.calls[action] += 1
        limiter = self._limiters.setdefault(
            secret_id, RateLimiter(self.options.requests_per_second, clock=self._monotonic)
        )
        if not limiter.try_acquire():
            raise ApiError(
                "RequestLimitExceeded",
                f"Your request rate exceeds the limit of {self.options.requests_per_second:g} "
                "requests per second. Please reduce the frequency of calls.",
            )
        fault = self.faults.for_request()
        if fault is RequestFault.THROTTLE:
            raise ApiError("RequestLimitExceeded", "Request rate limit exceeded (fault injection).")
        if fault is RequestFault.SERVER_ERROR:
            raise _HttpFault("503 Service Unavailable (fault injection)")
        if fault is RequestFault.INTERNAL_ERROR:
            raise ApiError("InternalError", "An internal error occurred (fault injection).")
        content_type = request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("application/json"):
            raise ApiError("InvalidParameter", "Content-Type must be application/json.")
        try:
            params = json.loads(body)
        except ValueError as exc:
            raise ApiError("InvalidParameter", f"The body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "The body must be a JSON object.")
        answer = await handler(params, secret_id)
        self.stats.handled[action] += 1
        if fault is RequestFault.HANG:
            # The action took effect; only its answer is late (the client's outcome is unknown).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.faults.hang_seconds)
        return answer

    def _actions(
        self,
    ) -> dict[str, Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]]]:
        return {
            "CreateAudioModerationTask": self._create,
            "DescribeTaskDetail": self._describe_task_detail,
            "DescribeTasks": self._describe_tasks,
            "CancelTask": self._cancel,
            "CreateAudioModerationSyncTask": self._sync,
        }

    # --- actions ---------------------------------------------------------------------------

    async def _create(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        request = check_create(params)
        now = self._now()
        results = []
        for item in request.tasks:
            live = request.type == "LIVE_AUDIO"
            if live and self._live_running(secret_id) >= self.options.live_concurrency:
                results.append(
                    {
                        "DataId": item.data_id,
                        "TaskId": "",
                        "Code": "RequestLimitExceeded",
                        "Message": "You have reached the concurrency limit",
                    }
                )
                continue
            task = EmulatedTask(
                task_id=new_task_id(),
                data_id=item.data_id,
                name=item.name,
                biz_type=request.biz_type,
                type="LIVE_AUDIO" if live else "AUDIO",
                url=item.url,
                secret_id=secret_id,
                created_at=now,
                updated_at=now,
                seed=request.seed,
                callback_url=request.callback_url,
                fault=self.faults.for_task(),
            )
            self.tasks[task.task_id] = task
            self.stats.tasks_by_data_id[item.data_id] += 1
            if item.storage == "COS":
                task.fail("URL_ERROR", "COS input is not available in the emulator", now)
            elif live:
                self._spawn(self._run(task), f"ams-emulator.live[{task.task_id}]")
            else:
                self._queue.put_nowait(task)
            results.append(
                {"DataId": item.data_id, "TaskId": task.task_id, "Code": "OK", "Message": "Success"}
            )
        return {"Results": results}

    def _task(self, task_id: str, secret_id: str) -> EmulatedTask:
        task = self.tasks.get(task_id)
        if task is None or task.secret_id != secret_id:
            raise ApiError("ResourceNotFound", f"The task `{task_id}` does not exist.")
        return task

    async def _describe_task_detail(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        task_id = check_task_id(params, {"ShowAllSegments"})
        show_all = params.get("ShowAllSegments", False)
        if not isinstance(show_all, bool):
            raise ApiError("InvalidParameter", "The parameter `ShowAllSegments` must be a Boolean.")
        return self._task(task_id, secret_id).detail(show_all_segments=show_all)

    async def _describe_tasks(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        request = check_describe_tasks(params)
        start = request.start or self._now() - timedelta(days=3)
        wanted = {
            "BizType": "biz_type",
            "Type": "type",
            "TaskStatus": "status",
        }
        matching = []
        for task in self.tasks.values():
            if task.secret_id != secret_id or task.created_at < start:
                continue
            if request.end is not None and task.created_at > request.end:
                continue
            if any(getattr(task, wanted[k]) != v for k, v in request.filter.items() if k in wanted):
                continue
            if "Suggestion" in request.filter and task.suggestion() != request.filter["Suggestion"]:
                continue
            matching.append(task)
        matching.sort(key=lambda t: t.created_at, reverse=True)
        page = matching[request.offset : request.offset + request.limit]
        after = request.offset + len(page)
        return {
            "Total": str(len(matching)),
            "Data": [task.summary() for task in page],
            "PageToken": page_token(after) if after < len(matching) else "",
        }

    async def _cancel(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        task = self._task(check_task_id(params), secret_id)
        task.move("CANCELLED", self._now())
        stop = self._live_stops.get(task.task_id)
        if stop is not None:
            stop.set()
        return {}

    async def _sync(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        request = check_sync(params)
        content = request.content
        if content is None:
            try:
                content = await self._download(request.url)
            except DecodeFailure as exc:
                raise ApiError(
                    "InvalidParameterValue", f"`FileUrl` could not be read: {exc}"
                ) from exc
        pieces: list[Pcm] = []

        async def keep(samples: Pcm) -> bool:
            pieces.append(samples)
            return True

        try:
            seconds = await self._decode(io.BytesIO(content), keep, slice_seconds=60)
        except DecodeFailure as exc:
            raise ApiError(
                "InvalidParameterValue.InvalidContent", f"The audio cannot be decoded: {exc}"
            ) from exc
        if seconds > SYNC_MAX_SECONDS:
            raise ApiError(
                "InvalidParameterValue",
                f"The audio lasts {seconds:.1f} s; the sync task accepts at most 60 s.",
            )
        started = time.monotonic()
        now = self._now()
        segment = _slice_segment(
            request.data_id[:40] or "sync", now, 0, np.concatenate(pieces), now, 0.0
        )
        verdict = await self._judge(segment)
        await self._pace(started, seconds)
        self.stats.billed_seconds += seconds
        if verdict.outcome in (Outcome.FAILED, Outcome.SKIPPED_OVERLOADED):
            raise ApiError("InternalError", f"The audio could not be judged: {verdict.reason}")
        result = audio_result(verdict, seconds)
        return {
            "DataId": request.data_id,
            "Name": request.name,
            "BizType": request.biz_type,
            "Suggestion": result["Suggestion"],
            "Label": result["Label"],
            "AsrText": result["Text"][:1000],
            "TextResults": result["TextResults"],
            "MoanResults": [],
            "SubLabel": result["SubLabel"],
            "LanguageResults": [],
            "SpeakerResults": [],
            "RecognitionResults": [],
            "Duration": result["Duration"],
            "HitFlag": result["HitFlag"],
            "Score": result["Score"],
        }

    # --- tasks -----------------------------------------------------------------------------

    def _live_running(self, secret_id: str) -> int:
        return sum(
            1
            for t in self.tasks.values()
            if t.secret_id == secret_id and t.type == "LIVE_AUDIO" and t.status not in TERMINAL
        )

    async def _worker(self) -> None:
        while True:
            task = await self._queue.get()
            await self._run(task)

    async def _run(self, task: EmulatedTask) -> None:
        if task.status != "PENDING":
            return  # cancelled while queued
        task.move("RUNNING", self._now())
        if task.fault is TaskFault.STUCK:
            return  # never leaves RUNNING (fault injection)
        if task.fault is TaskFault.ERROR:
            task.fail("URL_ERROR", "the url is request is 404 (fault injection)", self._now())
        else:
            await self._judge_task(task)
        await self._callback(task, final=True)

    async def _judge_task(self, task: EmulatedTask) -> None:
        started = time.monotonic()
        live = task.type == "LIVE_AUDIO"
        source: str | BinaryIO
        try:
            source = task.url if live else io.BytesIO(await self._download(task.url))
        except DecodeFailure as exc:
            task.fail(exc.error_type, str(exc), self._now())
            return
        index = 0
        offset = 0.0

        async def judge(samples: Pcm) -> bool:
            nonlocal index, offset
            if task.status != "RUNNING":
                return False  # cancelled: stop pulling
            now = self._now()
            seconds = len(samples) / SAMPLE_RATE
            heard_at = (
                now - timedelta(seconds=seconds)
                if live
                else task.created_at + timedelta(seconds=offset)
            )
            segment = _slice_segment(
                task.task_id, task.created_at, index, samples, heard_at, offset
            )
            verdict = await self._judge(segment)
            if verdict.outcome in (Outcome.FAILED, Outcome.SKIPPED_OVERLOADED):
                task.fail(
                    "MODERATION_ERROR", f"slice {index} could not be judged: {verdict.reason}", now
                )
                return False
            if not live:
                await self._pace(started, offset + seconds)
            entry: dict[str, Any] = {
                "OffsetTime": str(int(heard_at.timestamp()) if live else int(offset)),
                "Result": audio_result(verdict, seconds),
                "CreatedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            task.segments.append(entry)
            task.duration += seconds
            task.updated_at = self._now()
            if entry["Result"]["HitFlag"] or self.options.full_callbacks:
                await self._callback(task, final=False, segment=entry)
            index += 1
            offset += seconds
            return True

        stop = threading.Event()
        if live:
            self._live_stops[task.task_id] = stop
        try:
            await self._decode(source, judge, stop=stop)
        except DecodeFailure as exc:
            task.fail(exc.error_type, str(exc), self._now())
        finally:
            self._live_stops.pop(task.task_id, None)
        if task.status == "RUNNING":
            self.stats.billed_seconds += task.duration
            task.move("FINISH", self._now())

    async def _judge(self, segment: Segment) -> Verdict:
        try:
            return await self.engine.moderate(segment, None)
        except StreamGuardError as exc:
            return Verdict(
                segment_id=segment.id,
                outcome=Outcome.FAILED,
                engine=self.engine.name,
                engine_version=self.engine.version,
                reason=f"engine error: {exc}",
            )

    async def _pace(self, started: float, audio_seconds: float) -> None:
        """Take as long as AMS would (``processing_factor`` times the audio) before answering."""
        due = started + audio_seconds * self.options.processing_factor
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _download(self, url: str) -> bytes:
        assert self._session is not None
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise DecodeFailure("URL_ERROR", f"the url is request is {response.status}")
                content = bytearray()
                async for block in response.content.iter_chunked(1 << 16):
                    content += block
                    if len(content) > self.options.max_download_bytes:
                        break
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DecodeFailure("URL_ERROR", f"the url could not be fetched: {exc!r}") from exc
        if len(content) > self.options.max_download_bytes:
            raise DecodeFailure("URL_ERROR", "the file is larger than 500 MB")
        return bytes(content)

    async def _decode(
        self,
        source: str | BinaryIO,
        on_slice: Callable[[Pcm], Awaitable[bool]],
        *,
        slice_seconds: int | None = None,
        stop: threading.Event | None = None,
    ) -> float:
        """Decode in a worker thread, handing each slice to ``on_slice`` on the loop."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Pcm | None] = asyncio.Queue()
        stop = stop or threading.Event()
        seconds = slice_seconds or self.options.slice_seconds

        def emit(samples: Pcm | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, samples)
            except RuntimeError:
                stop.set()  # the loop is gone: stop reading

        def work() -> float:
            try:
                return decode_slices(source, seconds, emit, stop, self.options.download_timeout)
            finally:
                emit(None)

        future = loop.run_in_executor(self._executor, work)
        try:
            while (samples := await queue.get()) is not None:
                if not await on_slice(samples):
                    break
        finally:
            stop.set()
            await asyncio.wait([future])
        return future.result()

    async def _callback(
        self, task: EmulatedTask, *, final: bool, segment: dict[str, Any] | None = None
    ) -> None:
        if not task.callback_url:
            return
        detail = task.detail(show_all_segments=self.options.full_callbacks)
        if segment is not None:
            detail["AudioSegments"] = [segment]
        body = json.dumps(detail, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if task.seed:
            headers["X-Signature"] = callback_signature(task.seed, body)
        # The final callback is retried 3 times; slice callbacks are not retried (spec §4.4).
        attempts = 4 if final else 1
        assert self._session is not None
        for attempt in range(attempts):
            try:
                async with self._session.post(
                    task.callback_url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as response:
                    if 200 <= response.status < 300:
                        self.stats.callbacks += 1
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("callback for %s failed: %r", task.task_id, exc)
            if attempt + 1 < attempts:
                await asyncio.sleep(0.5 * 2**attempt)


def _slice_segment(
    name: str, created: datetime, index: int, samples: Pcm, started: datetime, offset: float
) -> Segment:
    """A slice of a task as the ``Segment`` an engine judges."""
    seconds = len(samples) / SAMPLE_RATE
    return Segment(
        stream_id=name[:40],
        seq=index,
        attached_at=created,
        samples=samples,
        started_at=started,
        ended_at=started + timedelta(seconds=seconds),
        media_start=offset,
        gap_before=0.0,
        flags=frozenset(),
    )


def create_app(
    engine: Engine, options: EmulatorOptions, faults: Faults | None = None
) -> web.Application:
    """A ``web.Application`` serving the emulator (its workers start and stop with the app)."""
    return AmsEmulator(engine, options, faults).app
