"""The five AMS 2020-12-29 actions over the emulator's tasks (spec §3).

Each handler takes the request's JSON object and the caller's SecretId and returns the
``Response`` fields (without RequestId), or raises ``ApiError``. A caller sees only the
tasks it created.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from streamguard.core.chunk import Pcm
from streamguard.core.verdict import Verdict
from streamguard.emulator import shapes
from streamguard.emulator.faults import Faults, TaskFault
from streamguard.emulator.front import Action
from streamguard.emulator.judging import UNJUDGED, SliceJudge, slice_segment
from streamguard.emulator.media import DecodeFailure, MediaReader
from streamguard.emulator.options import EmulatorOptions, EmulatorStats
from streamguard.emulator.runner import TaskRunner
from streamguard.emulator.tasks import TERMINAL, EmulatedTask, audio_result, new_task_id
from streamguard.emulator.validation import (
    ApiError,
    CreateParams,
    SyncParams,
    TaskParams,
    check_create,
    check_describe_tasks,
    check_sync,
    check_task_id,
    page_token,
)

__all__ = ["API_VERSION", "SERVICE", "SYNC_MAX_SECONDS", "AmsActions"]

SERVICE = "ams"
"""The service name requests are signed for."""
API_VERSION = "2020-12-29"
SYNC_MAX_SECONDS = 60.0
"""The longest audio CreateAudioModerationSyncTask judges."""
_FILTERED = {"BizType": "biz_type", "Type": "type", "TaskStatus": "status"}
"""DescribeTasks filters that compare a task attribute as it is."""


class AmsActions:
    """The AMS actions: tasks are created into ``tasks`` and started by ``runner``.

    ``faults`` gives the faults in force when a task is created (they may be replaced at
    any time); ``now`` is the server's wall clock.
    """

    def __init__(
        self,
        tasks: dict[str, EmulatedTask],
        stats: EmulatorStats,
        options: EmulatorOptions,
        runner: TaskRunner,
        media: MediaReader,
        judge: SliceJudge,
        *,
        faults: Callable[[], Faults],
        now: Callable[[], datetime],
    ) -> None:
        self._tasks = tasks
        self._stats = stats
        self._options = options
        self._runner = runner
        self._media = media
        self._judge = judge
        self._faults = faults
        self._now = now
        self._created = itertools.count(1)

    def table(self) -> Mapping[str, Action]:
        """Action name → handler."""
        return {
            "CreateAudioModerationTask": self.create,
            "DescribeTaskDetail": self.describe_task_detail,
            "DescribeTasks": self.describe_tasks,
            "CancelTask": self.cancel,
            "CreateAudioModerationSyncTask": self.sync,
        }

    async def create(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """CreateAudioModerationTask: one result per task, refused ones included."""
        request = check_create(params)
        now = self._now()
        results = []
        for item in request.tasks:
            live = request.type == "LIVE_AUDIO"
            if live and self._live_running(secret_id) >= self._options.live_concurrency:
                code, message = "RequestLimitExceeded", "You have reached the concurrency limit"
                results.append(_refused(item, code, message))
                continue
            if self._faults().refuses_task():
                code, message = "InternalError", "An internal error occurred (fault injection)."
                results.append(_refused(item, code, message))
                continue
            task = self._new_task(request, item, secret_id, now)
            if item.storage == "COS":
                task.fail("URL_ERROR", "COS input is not available in the emulator", now)
            else:
                self._runner.submit(task)
            results.append(
                {"DataId": item.data_id, "TaskId": task.task_id, "Code": "OK", "Message": "Success"}
            )
        return shapes.create_answer({"Results": results}, self._faults().shapes)

    def _new_task(
        self, request: CreateParams, item: TaskParams, secret_id: str, now: datetime
    ) -> EmulatedTask:
        task = EmulatedTask(
            task_id=new_task_id(),
            data_id=item.data_id,
            name=item.name,
            biz_type=request.biz_type,
            type="LIVE_AUDIO" if request.type == "LIVE_AUDIO" else "AUDIO",
            url=item.url,
            secret_id=secret_id,
            created_at=now,
            updated_at=now,
            seed=request.seed,
            callback_url=request.callback_url,
            fault=self._faults().for_task(),
            seq=next(self._created),
            slice_seconds=self._options.slice_seconds,
        )
        self._tasks[task.task_id] = task
        self._stats.tasks_by_data_id[item.data_id] += 1
        return task

    def _live_running(self, secret_id: str) -> int:
        return sum(
            1
            for t in self._tasks.values()
            if t.secret_id == secret_id and t.type == "LIVE_AUDIO" and t.status not in TERMINAL
        )

    def _task(self, task_id: str, secret_id: str) -> EmulatedTask:
        task = self._tasks.get(task_id)
        if task is None or task.secret_id != secret_id or task.fault is TaskFault.LOST:
            raise ApiError("ResourceNotFound", f"The task `{task_id}` does not exist.")
        return task

    async def describe_task_detail(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """DescribeTaskDetail: hit slices only unless ShowAllSegments."""
        task_id = check_task_id(params, {"ShowAllSegments"})
        show_all = params.get("ShowAllSegments", False)
        if not isinstance(show_all, bool):
            raise ApiError("InvalidParameter", "The parameter `ShowAllSegments` must be a Boolean.")
        faults = self._faults()
        answer = self._task(task_id, secret_id).detail(show_all_segments=show_all)
        if faults.padding_bytes:
            answer["Padding"] = "x" * faults.padding_bytes
        return shapes.detail_answer(answer, faults.shapes)

    async def describe_tasks(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """DescribeTasks: newest first, filtered, paged by an opaque token (3 days by default).

        The token marks the last task a page showed, so tasks created between pages (newer
        than any shown) neither shift nor hide the older ones still to come."""
        request = check_describe_tasks(params)
        faults = self._faults()
        if faults.page_limit is not None and request.limit > faults.page_limit:
            raise ApiError("InvalidParameterValue", f"`Limit` must be 1 to {faults.page_limit}.")
        start = request.start or self._now() - timedelta(days=3)
        matching = []
        for task in self._tasks.values():
            if task.secret_id != secret_id or task.created_at < start:
                continue
            if task.fault is TaskFault.LOST:
                continue
            if request.end is not None and task.created_at > request.end:
                continue
            wanted = request.filter.items()
            if any(getattr(task, _FILTERED[k]) != v for k, v in wanted if k in _FILTERED):
                continue
            if "Suggestion" in request.filter and task.suggestion() != request.filter["Suggestion"]:
                continue
            matching.append(task)
        matching.sort(key=lambda t: t.seq, reverse=True)
        rest = [t for t in matching if request.after is None or t.seq < request.after]
        page = rest[: request.limit]
        answer = {
            "Total": str(len(matching)),
            "Data": [task.summary() for task in page],
            "PageToken": page_token(page[-1].seq) if len(rest) > len(page) else "",
        }
        return shapes.tasks_answer(answer, faults.shapes)

    async def cancel(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """CancelTask: a queued task never runs, a running one stops at its next slice."""
        task = self._task(check_task_id(params), secret_id)
        task.move("CANCELLED", self._now())
        self._runner.stop_live(task.task_id)
        return {}

    async def sync(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        """CreateAudioModerationSyncTask: at most 60 s of audio judged while the caller waits."""
        request = check_sync(params)
        samples, seconds = await self._sync_audio(request)
        started = time.monotonic()
        now = self._now()
        segment = slice_segment(request.data_id[:40] or "sync", now, 0, samples, now, 0.0)
        verdict = await self._judge.judge(segment)
        await self._judge.pace(started, seconds)
        self._stats.billed_seconds += seconds
        if verdict.outcome in UNJUDGED:
            raise ApiError("InternalError", f"The audio could not be judged: {verdict.reason}")
        return _sync_answer(request, verdict, seconds, self._options.language)

    async def _sync_audio(self, request: SyncParams) -> tuple[Pcm, float]:
        """The request's audio, fetched if it came by URL, decoded whole; and its length."""
        content = request.content
        if content is None:
            try:
                content = await self._media.download(request.url)
            except DecodeFailure as exc:
                raise ApiError(
                    "InvalidParameterValue", f"`FileUrl` could not be read: {exc}"
                ) from exc
        pieces: list[Pcm] = []

        async def keep(samples: Pcm) -> bool:
            pieces.append(samples)
            return True

        try:
            seconds = await self._media.slices(io.BytesIO(content), keep, slice_seconds=60)
        except DecodeFailure as exc:
            raise ApiError(
                "InvalidParameterValue.InvalidContent", f"The audio cannot be decoded: {exc}"
            ) from exc
        if seconds > SYNC_MAX_SECONDS:
            raise ApiError(
                "InvalidParameterValue",
                f"The audio lasts {seconds:.1f} s; the sync task accepts at most 60 s.",
            )
        return np.concatenate(pieces), seconds


def _refused(item: TaskParams, code: str, message: str) -> dict[str, Any]:
    """A Create's result for a task it did not create."""
    return {"DataId": item.data_id, "TaskId": "", "Code": code, "Message": message}


def _sync_answer(
    request: SyncParams, verdict: Verdict, seconds: float, language: str
) -> dict[str, Any]:
    """The CreateAudioModerationSyncTask answer for the audio's one verdict."""
    result = audio_result(verdict, seconds, language)
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
        "LanguageResults": result["LanguageResults"],
        "SpeakerResults": [],
        "RecognitionResults": [],
        "Duration": result["Duration"],
        "HitFlag": result["HitFlag"],
        "Score": result["Score"],
    }
