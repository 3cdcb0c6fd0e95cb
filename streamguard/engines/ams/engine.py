"""``AmsEngine``: the ``Engine`` that has Tencent Cloud AMS judge segments.

Async mode: each segment's clip is placed in the clip server's directory, its intent to
submit is recorded, and segments are batched (up to 10, within ``batch_window``) into
CreateAudioModerationTask calls with DataId = segment id and Type AUDIO. Tasks are polled
on a schedule fitted to AMS's processing time: one DescribeTasks page tells many tasks'
status at once, and DescribeTaskDetail (ShowAllSegments) is fetched only for finished tasks
that hit something (or ended ERROR). A task stuck past ``task_deadline`` is cancelled and
its segment failed; an ERROR task is re-delivered once, then failed with the reason.

Everything is tracked in SQLite (``TaskStore``): after a restart, pending tasks are polled
again, and a Create whose outcome is unknown is reconciled through DescribeTasks before the
segment is submitted again, so nothing already accepted is billed twice.

Sync mode sends each segment with CreateAudioModerationSyncTask instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import random
import secrets
import shutil
import time
import wave
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp
from pydantic import ValidationError

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.errors import ConfigError, ConfigProblem
from streamguard.core.excerpt import Excerpt
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.verdict import Suggestion, Verdict
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.delivery import ClipServer
from streamguard.state.ams_tasks import SegmentState, TaskStore, TrackedSegment
from streamguard.state.db import Database
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.errors import AmsError, AmsRetryableError
from streamguard.tencentcloud.models import (
    CreateTasksRequest,
    DescribeTasksRequest,
    StorageInfo,
    SyncTaskRequest,
    TaskData,
    TaskDetail,
    TaskFilter,
    TaskInput,
)
from streamguard.tencentcloud.signing import Credentials, callback_signature

__all__ = ["URL_KEY_FILE", "AmsEngine", "LateVerdictHandler", "credentials_from_config"]

URL_KEY_FILE = "ams-url-key"
"""In the state directory: the clip URL key when none is configured."""

LateVerdictHandler = Callable[[Verdict, SegmentInfo | None], Awaitable[None]]
"""Takes a verdict nobody awaits any more and its segment (None for rows tracked before
segments were kept)."""

log = logging.getLogger(__name__)

RECONCILE_MARGIN = 120.0
"""Seconds of clock skew allowed when asking AMS which tasks were created since a time."""
PAGE_LIMIT = 100
MAX_RECONCILE_PAGES = 20
MAX_DELIVERIES = 2
"""An ERROR task is delivered again once; the second ERROR fails the segment."""


def credentials_from_config(config: AmsEngineConfig) -> Credentials:
    """The AMS credentials, or a ``ConfigError`` naming what is missing."""
    problems = [
        ConfigProblem(f"engine.{name}", f"missing: set {env} or the credential file")
        for name, env, value in (
            ("secret_id", "$TENCENTCLOUD_SECRET_ID", config.secret_id),
            ("secret_key", "$TENCENTCLOUD_SECRET_KEY", config.secret_key),
        )
        if value is None
    ]
    if problems:
        raise ConfigError(problems)
    assert config.secret_id is not None
    assert config.secret_key is not None
    return Credentials(
        config.secret_id.get_secret_value(),
        config.secret_key.get_secret_value(),
        config.token.get_secret_value() if config.token else None,
    )


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _excerpt(segment: Segment, regions: Sequence[tuple[float, float]] | None) -> Excerpt:
    """The part of the segment to send: ``regions`` clamped to it (the whole by default)."""
    if regions is None:
        return Excerpt.whole(segment.duration)
    excerpt = Excerpt.around(regions, segment.duration, pad=0.0)
    if excerpt is None:
        raise ValueError(f"speech regions {regions} hold no audio of segment {segment.id}")
    return excerpt


def _write_wav(segment: Segment, path: Path, excerpt: Excerpt) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(excerpt.samples(segment.samples).astype("<i2").tobytes())


class AmsEngine:
    """Judges segments with AMS; ``async with AmsEngine(config, db) as engine``.

    ``client`` and ``clips`` are built from ``config`` unless given (then the caller owns
    them). ``on_verdict`` receives verdicts nobody awaits any more: tasks resumed after a
    restart. ``clock`` is wall time (scheduling, stored times); tests make intervals small.
    """

    name = verdicts.ENGINE_NAME
    needs_clip = True  # AMS fetches each segment's clip from our signed URL
    version = verdicts.ENGINE_VERSION

    def __init__(
        self,
        config: AmsEngineConfig,
        db: Database,
        *,
        state_dir: Path | None = None,
        client: AmsClient | None = None,
        clips: ClipServer | None = None,
        on_verdict: LateVerdictHandler | None = None,
        clock: Callable[[], float] = time.time,
        tick: float = 0.1,
    ) -> None:
        self.config = config
        self.segments_in_flight = config.segments_in_flight
        self.store = TaskStore(db)
        self._state_dir = state_dir or Path(".")
        self._key_file = state_dir / URL_KEY_FILE if state_dir is not None else None
        self._url_key = b""
        self._client = client
        self._clips = clips
        self._on_verdict = on_verdict
        self._clock = clock
        self._tick = tick
        self._rng = random.Random()
        self._seed = ""
        self.callbacks_settled = 0
        """Tasks settled by an AMS callback rather than by polling."""
        self._waiters: dict[str, list[asyncio.Future[Verdict]]] = {}
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._stack = AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None
        self._loops: list[asyncio.Task[None]] = []

    @property
    def client(self) -> AmsClient:
        """The AMS client in use (given, or built from the config on entry)."""
        assert self._client is not None, "AmsEngine is not open"
        return self._client

    @property
    def clips(self) -> ClipServer:
        """The clip server in use (given, or built from the config on entry)."""
        assert self._clips is not None, "AmsEngine is not open"
        return self._clips

    async def __aenter__(self) -> Self:
        await self.store.migrate()
        self._url_key = await asyncio.to_thread(self._load_url_key)
        try:
            if self._client is None:
                self._client = await self._stack.enter_async_context(self._build_client())
            if self._clips is None:
                self._clips = await self._stack.enter_async_context(self._build_clips())
            if self.config.callbacks and self.config.mode == "async":
                self._seed = self._callback_seed()
                self.clips.on_callback = self._on_callback
            group = asyncio.TaskGroup()
            await group.__aenter__()
            self._group = group
            if self.config.mode == "async":
                self._loops = [
                    group.create_task(self._submit_loop(), name="ams.submit"),
                    group.create_task(self._poll_loop(), name="ams.poll"),
                ]
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop polling and submitting and close owned parts.

        State stays in the database: the next engine on it resumes every unfinished
        segment. ``moderate`` calls still waiting are cancelled.
        """
        group, self._group = self._group, None
        if self._clips is not None and self._clips.on_callback == self._on_callback:
            self._clips.on_callback = None
        try:
            if group is not None:
                for task in self._loops:
                    task.cancel()
                await group.__aexit__(None, None, None)
        finally:
            for waiters in self._waiters.values():
                for waiter in waiters:
                    waiter.cancel()
            self._waiters.clear()
            await self._stack.aclose()

    def _load_url_key(self) -> bytes:
        """The clip URL key: configured, else kept in the state directory (created once,
        owner-only) so that URLs and callback signatures given out before a restart stay
        valid after it; random per process only without a state directory."""
        configured = self.config.url_signing_key
        if configured is not None:
            return configured.get_secret_value().encode()
        if self._key_file is None:
            return secrets.token_hex(32).encode()
        with contextlib.suppress(FileNotFoundError):
            return self._key_file.read_bytes()
        key = secrets.token_hex(32).encode()
        self._key_file.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(
            os.open(self._key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"
        ) as out:
            out.write(key)
        return key

    def _callback_seed(self) -> str:
        """The callback Seed: derived from the URL key, so it survives restarts."""
        return hmac.new(self._url_key, b"ams-callback-seed", hashlib.sha256).hexdigest()[:32]

    def _build_client(self) -> AmsClient:
        config = self.config
        return AmsClient(
            config.endpoint,
            credentials_from_config(config),
            requests_per_second=config.requests_per_second,
            timeout=aiohttp.ClientTimeout(
                total=config.request_timeout, connect=config.connect_timeout
            ),
            retry=RetryPolicy(
                attempts=config.retry_attempts, total_seconds=config.retry_total_seconds
            ),
            region=config.region,
            language=config.language,
        )

    def _build_clips(self) -> ClipServer:
        config = self.config
        host, _, port = config.delivery_listen.rpartition(":")
        return ClipServer(
            config.clips_dir or self._state_dir / "ams-clips",
            self._url_key,
            public_base_url=config.public_base_url,
            ttl=config.url_ttl,
            host=host,
            port=int(port),
        )

    # --- the Engine interface --------------------------------------------------------------

    async def moderate(
        self,
        segment: Segment,
        clip: Path | None,
        *,
        biz_type: str | None = None,
        speech: Sequence[tuple[float, float]] | None = None,
    ) -> Verdict:
        """Judge one segment (``biz_type``: the stream's profile; default from config).

        ``speech`` (ordered (start, end) seconds within the segment) limits what is sent, and
        so billed, to those regions, joined into one clip; the clip is then written here (a
        given ``clip`` is not used). Verdict times stay relative to the segment. A segment
        already tracked is never submitted again: its stored verdict is returned, or its
        pending task awaited. Never raises for a segment AMS could not judge.
        """
        tracked = await self.store.get(segment.id)
        if tracked is not None and tracked.state in SegmentState.TERMINAL:
            stored = tracked.stored_verdict()
            assert stored is not None
            return verdicts.from_json(stored)
        waiter: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(segment.id, []).append(waiter)
        try:
            if tracked is None:
                excerpt = _excerpt(segment, speech)
                if speech is not None:
                    clip = None
                if self.config.mode == "sync":
                    return await self._moderate_sync(segment, clip, biz_type, excerpt)
                path, owned = await self._place_clip(segment, clip, excerpt)
                await self.store.add(
                    segment.info(),
                    biz_type or self.config.biz_type,
                    str(path),
                    owned,
                    excerpt,
                    self._clock(),
                )
                self._wake.set()
            return await waiter
        finally:
            waiters = self._waiters.get(segment.id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(segment.id, None)

    async def _place_clip(
        self, segment: Segment, clip: Path | None, excerpt: Excerpt
    ) -> tuple[Path, bool]:
        """The clip inside the served directory: as given, copied in, or written as WAV."""
        root = self.clips.root
        if clip is not None:
            with contextlib.suppress(ValueError):
                self.clips.relative_name(clip)
                return clip, False
            target = root / f"{segment.id}{clip.suffix or '.bin'}"
            await asyncio.to_thread(shutil.copyfile, clip, target)
            return target, True
        target = root / f"{segment.id}.wav"
        await asyncio.to_thread(_write_wav, segment, target, excerpt)
        return target, True

    async def _finish(self, row: TrackedSegment, verdict: Verdict, status: str | None) -> None:
        verdict = verdicts.remapped(verdict, row.excerpt())
        await self.store.finish(row.segment_id, verdict, self._clock(), status)
        if row.owned_clip:
            await asyncio.to_thread(Path(row.clip).unlink, missing_ok=True)
        waiters = self._waiters.get(row.segment_id, [])
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(verdict)
        if not waiters and self._on_verdict is not None:
            await self._on_verdict(verdict, row.segment())

    async def _fail(self, row: TrackedSegment, reason: str, status: str | None = None) -> None:
        log.warning("AMS: segment %s failed: %s", row.segment_id, reason)
        await self._finish(row, verdicts.failed(row.segment_id, reason, row.task_id), status)

    # --- sync mode -------------------------------------------------------------------------

    async def _moderate_sync(
        self, segment: Segment, clip: Path | None, biz_type: str | None, excerpt: Excerpt
    ) -> Verdict:
        now = self._clock()
        suffix = clip.suffix.lstrip(".").lower() if clip is not None else ""
        if clip is None or suffix not in ("wav", "mp3", "m4a"):
            path, owned = await self._place_clip(segment, None, excerpt)
            suffix = "wav"
        else:
            path, owned = clip, False
        await self.store.add(
            segment.info(),
            biz_type,
            str(path),
            owned,
            excerpt,
            now,
        )
        await self.store.mark_submitting([segment.id], now)
        row = await self.store.get(segment.id)
        assert row is not None
        content = await asyncio.to_thread(path.read_bytes)
        request = SyncTaskRequest(
            biz_type=biz_type or self.config.biz_type or "default",
            data_id=segment.id,
            file_format="mp3" if suffix == "mp3" else "m4a" if suffix == "m4a" else "wav",
            file_content=base64.b64encode(content).decode("ascii"),
        )
        try:
            answer = await self.client.create_sync_task(request)
        except AmsError as exc:
            verdict = verdicts.failed(segment.id, f"AMS sync task failed: {exc}")
        else:
            verdict = verdicts.from_sync(segment.id, answer)
        await self._finish(row, verdict, None)
        return verdict

    # --- submission ------------------------------------------------------------------------

    async def _submit_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick * 5)
            self._wake.clear()
            try:
                await self._submit_due()
            except (AmsError, OSError) as exc:
                log.warning("AMS submission round failed: %s", exc)

    async def _submit_due(self) -> None:
        now = self._clock()
        due = await self.store.in_state(SegmentState.QUEUED, due_by=now)
        if not due:
            return
        oldest = min(row.due_at for row in due)
        if len(due) < self.config.batch_size and now - oldest < self.config.batch_window:
            # Wait for more segments to share the call, but not past the window.
            await asyncio.sleep(max(0.0, oldest + self.config.batch_window - now))
            due = await self.store.in_state(SegmentState.QUEUED, due_by=self._clock())
        by_biz: dict[str | None, list[TrackedSegment]] = {}
        for row in due:
            by_biz.setdefault(row.biz_type, []).append(row)
        size = self.config.batch_size
        for rows in by_biz.values():
            for start in range(0, len(rows), size):
                await self._submit(rows[start : start + size])

    async def _submit(self, rows: list[TrackedSegment]) -> None:
        ids = [row.segment_id for row in rows]
        now = self._clock()
        self._in_flight.update(ids)  # before the await: the poller must not reconcile these
        try:
            await self.store.mark_submitting(ids, now)
            request = CreateTasksRequest(
                tasks=[
                    TaskInput(
                        data_id=row.segment_id,
                        input=StorageInfo(url=self.clips.url_for(Path(row.clip))),
                    )
                    for row in rows
                ],
                biz_type=rows[0].biz_type,
                type="AUDIO",
                callback_url=self.clips.callback_url if self._seed else None,
                seed=self._seed or None,
            )
            try:
                answer = await self.client.create_tasks(request)
            except AmsRetryableError as exc:
                if exc.unprocessed:
                    for row in rows:
                        await self._retry_submit(row, f"Create refused: {exc}")
                else:
                    # The server may have created the tasks: find out before resubmitting.
                    log.info("AMS Create outcome unknown (%s); reconciling", exc)
                    await self._reconcile(rows, now)
                return
            except AmsError as exc:
                for row in rows:
                    await self._fail(row, f"AMS refused the Create call: {exc}")
                return
            by_id = {result.data_id: result for result in answer.results}
            for row in rows:
                result = by_id.get(row.segment_id)
                if result is None:
                    await self._reconcile([row], now)
                elif result.code == "OK" and result.task_id:
                    await self.store.mark_accepted(
                        row.segment_id, result.task_id, self._clock(), self._first_poll(row)
                    )
                elif result.code.startswith("RequestLimitExceeded"):
                    await self._retry_submit(row, f"task refused: {result.code}: {result.message}")
                else:
                    await self._fail(row, f"AMS refused the task: {result.code}: {result.message}")
        finally:
            self._in_flight.difference_update(ids)

    def _first_poll(self, row: TrackedSegment) -> float:
        expected = row.duration * self.config.processing_ratio
        grace = self.config.callback_grace if self._seed else 0.0
        return self._clock() + expected + grace

    async def _retry_submit(self, row: TrackedSegment, error: str) -> None:
        current = await self.store.get(row.segment_id)
        attempts = current.submit_attempts if current is not None else row.submit_attempts
        if attempts >= self.config.max_submit_attempts:
            await self._fail(row, f"gave up after {attempts} Create attempts; last: {error}")
            return
        delay = min(self.config.poll_interval_max, 0.5 * 2.0**attempts)
        due = self._clock() + delay / 2 + self._rng.uniform(0, delay / 2)
        await self.store.requeue(row.segment_id, self._clock(), due, error)
        self._wake.set()

    async def _reconcile(self, rows: list[TrackedSegment], since: float) -> None:
        """Learn whether AMS created tasks for these segments; resubmit only those it did not."""
        found = await self._find_tasks(
            {row.segment_id: row.task_id for row in rows}, since - RECONCILE_MARGIN
        )
        for row in rows:
            task = found.get(row.segment_id)
            if task is not None:
                log.info("AMS: segment %s was accepted as %s", row.segment_id, task.task_id)
                await self.store.mark_accepted(
                    row.segment_id, task.task_id, self._clock(), self._clock()
                )
            else:
                await self._retry_submit(row, "Create outcome unknown; AMS has no such task")

    async def _find_tasks(self, wanted: dict[str, str | None], since: float) -> dict[str, TaskData]:
        """Newest task per wanted DataId created since ``since`` (excluding a known old one).

        Raises ``AmsError`` when DescribeTasks cannot be read: the rows then stay
        ``submitting`` and are reconciled again later, never resubmitted blindly.
        """
        found: dict[str, TaskData] = {}
        token: str | None = None
        for _ in range(MAX_RECONCILE_PAGES):
            page = await self.client.describe_tasks(
                DescribeTasksRequest(
                    limit=PAGE_LIMIT,
                    filter=TaskFilter(type="AUDIO"),
                    start_time=_iso(since),
                    page_token=token,
                )
            )
            for task in page.data:
                if (
                    task.data_id in wanted
                    and task.data_id not in found
                    and task.task_id != wanted[task.data_id]
                ):
                    found[task.data_id] = task
            token = page.page_token or None
            if token is None or len(found) == len(wanted):
                break
        return found

    # --- polling ---------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self._poll_due()
            except (AmsError, OSError) as exc:
                log.warning("AMS polling round failed: %s", exc)
            await asyncio.sleep(self._tick)

    async def _poll_due(self) -> None:
        # A Create that died with the process (or whose reconcile failed) is reconciled here.
        orphans = [
            row
            for row in await self.store.in_state(SegmentState.SUBMITTING)
            if row.segment_id not in self._in_flight
        ]
        if orphans:
            try:
                await self._reconcile(orphans, min(r.submitted_at or r.created_at for r in orphans))
            except AmsError as exc:
                log.info("AMS reconcile failed (will retry): %s", exc)
        due = await self.store.in_state(SegmentState.PENDING, due_by=self._clock())
        if not due:
            return
        statuses: dict[str, TaskData] = {}
        if len(due) > 1:
            # One page of statuses instead of one detail call per task.
            since = min(row.accepted_at or row.created_at for row in due) - RECONCILE_MARGIN
            page = await self.client.describe_tasks(
                DescribeTasksRequest(limit=PAGE_LIMIT, start_time=_iso(since))
            )
            statuses = {task.task_id: task for task in page.data}
        for row in due:
            try:
                await self._poll(row, statuses.get(row.task_id or ""))
            except AmsError as exc:
                log.info("AMS poll of %s failed: %s", row.task_id, exc)

    async def _poll(self, row: TrackedSegment, summary: TaskData | None) -> None:
        assert row.task_id is not None
        if summary is not None:
            if summary.status in ("PENDING", "RUNNING"):
                await self._still_running(row, summary.status)
                return
            passed = summary.status == "FINISH" and (
                verdicts.suggestion(summary.suggestion) is Suggestion.PASS and not summary.labels
            )
            if passed and not self.config.fetch_pass_details:
                await self._finish(row, verdicts.from_summary(row.segment_id, summary), "FINISH")
                return
        detail = await self.client.describe_task_detail(row.task_id, show_all_segments=True)
        if detail.status in ("FINISH", "ERROR", "CANCELLED"):
            await self._settle(row, detail)
        else:
            await self._still_running(row, detail.status)

    async def _settle(self, row: TrackedSegment, detail: TaskDetail) -> None:
        """A task ended (learned by poll or callback): verdict, re-delivery, or failure."""
        if detail.status == "FINISH":
            await self._finish(row, verdicts.from_detail(row.segment_id, detail), "FINISH")
        elif detail.status == "ERROR":
            error = (
                f"task {row.task_id} ended ERROR: {detail.error_type}: {detail.error_description}"
            )
            if row.deliveries < MAX_DELIVERIES:
                log.info("AMS: %s; delivering segment %s again", error, row.segment_id)
                await self.store.requeue(row.segment_id, self._clock(), self._clock(), error)
                self._wake.set()
            else:
                await self._fail(row, f"AMS {error} (after {row.deliveries} deliveries)", "ERROR")
        else:
            await self._fail(row, f"AMS task {row.task_id} was cancelled", "CANCELLED")

    async def _on_callback(self, body: bytes, headers: Mapping[str, str]) -> int:
        """A result AMS pushed: checked against the Seed, then settled like a poll answer."""
        expected = callback_signature(self._seed, body)
        if not hmac.compare_digest(headers.get("X-Signature", ""), expected):
            return 403
        try:
            detail = TaskDetail.model_validate_json(body)
        except ValidationError:
            return 400
        if detail.status not in ("FINISH", "ERROR", "CANCELLED"):
            return 200  # a slice's progress; the final callback carries the result
        row = await self.store.by_task(detail.task_id)
        if row is None or row.state != SegmentState.PENDING:
            return 200  # not (yet) recorded as accepted: polling will settle it
        self.callbacks_settled += 1
        await self._settle(row, detail)
        return 200

    async def _still_running(self, row: TrackedSegment, status: str) -> None:
        now = self._clock()
        age = now - (row.accepted_at or row.created_at)
        if age > self.config.task_deadline:
            reason = (
                f"AMS task {row.task_id} still {status} {age:.0f} s after acceptance "
                f"(deadline {self.config.task_deadline:g} s); cancelled"
            )
            try:
                await self.client.cancel_task(row.task_id or "")
            except AmsError as exc:
                reason += f" (CancelTask failed: {exc.code})"
            await self._fail(row, reason, "CANCELLED")
            return
        interval = min(
            self.config.poll_interval_max, self.config.poll_interval * 1.5 ** max(0, row.polls - 1)
        )
        await self.store.mark_polled(row.segment_id, status, now, now + interval)
