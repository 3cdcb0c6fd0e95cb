"""Parameter validation for each action, answering with the spec's codes (spec §3, §6).

Unknown keys → UnknownParameter, a missing required one → MissingParameter, a wrong type →
InvalidParameter, a value out of range → InvalidParameterValue. Messages name the field.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamguard.core.segment import DATA_ID_PATTERN

__all__ = [
    "ApiError",
    "CreateParams",
    "DescribeTasksParams",
    "SyncParams",
    "TaskParams",
    "check_create",
    "check_describe_tasks",
    "check_sync",
    "check_task_id",
    "page_token",
]

BIZ_TYPE = re.compile(r"^[A-Za-z0-9_]{3,32}$")
MAX_TASKS = 10
MAX_PAGE = 100
MAX_SYNC_BYTES = 5 * 1024 * 1024
TASK_STATUSES = ("FINISH", "PENDING", "RUNNING", "ERROR", "CANCELLED")
USER_FIELDS = frozenset(
    {
        "Level",
        "Gender",
        "Age",
        "UserId",
        "Phone",
        "AccountType",
        "Nickname",
        "HeadUrl",
        "Desc",
        "RoomId",
        "GroupId",
        "GroupSize",
        "ReceiverId",
        "SendTime",
    }
)


class ApiError(Exception):
    """An error envelope to answer with: ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _only(params: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    for key in params:
        if key not in allowed:
            raise ApiError("UnknownParameter", f"The parameter `{where}{key}` is not recognized.")


def _string(params: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = params.get(key)
    if value is None:
        if required:
            raise ApiError(
                "MissingParameter", f"The request is missing a required parameter `{where}{key}`."
            )
        return ""
    if not isinstance(value, str):
        raise ApiError("InvalidParameter", f"The parameter `{where}{key}` must be a String.")
    return value


def _object(params: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError("InvalidParameter", f"The parameter `{where}{key}` must be an object.")
    return value


def _biz_type(params: Mapping[str, Any], *, required: bool) -> str:
    biz = _string(params, "BizType", "", required=required)
    if biz and not BIZ_TYPE.match(biz):
        raise ApiError(
            "InvalidParameterValue",
            "The value of `BizType` must be 3-32 letters, digits or underscores.",
        )
    return biz


def _data_id(params: Mapping[str, Any], where: str, *, required: bool) -> str:
    data_id = _string(params, "DataId", where, required=required)
    if data_id and not DATA_ID_PATTERN.match(data_id):
        raise ApiError(
            "InvalidParameterValue.InvalidDataId",
            f"The value of `{where}DataId` must be at most 64 of A-Z a-z 0-9 _ - @ #.",
        )
    return data_id


@dataclass(frozen=True, slots=True)
class TaskParams:
    """One validated TaskInput."""

    data_id: str
    name: str
    url: str
    storage: str


@dataclass(frozen=True, slots=True)
class CreateParams:
    """A validated CreateAudioModerationTask request."""

    tasks: list[TaskParams]
    biz_type: str
    type: str
    seed: str
    callback_url: str


def check_create(params: Mapping[str, Any]) -> CreateParams:
    """Validate CreateAudioModerationTask."""
    _only(params, {"Tasks", "BizType", "Type", "Seed", "CallbackUrl", "User"}, "")
    raw_tasks = params.get("Tasks")
    if raw_tasks is None:
        raise ApiError("MissingParameter", "The request is missing a required parameter `Tasks`.")
    if not isinstance(raw_tasks, list):
        raise ApiError("InvalidParameter", "The parameter `Tasks` must be an array of TaskInput.")
    if not 1 <= len(raw_tasks) <= MAX_TASKS:
        raise ApiError(
            "InvalidParameterValue",
            f"`Tasks` must hold 1 to {MAX_TASKS} tasks, got {len(raw_tasks)}.",
        )
    tasks = []
    for index, raw in enumerate(raw_tasks):
        where = f"Tasks.{index}."
        if not isinstance(raw, dict):
            raise ApiError("InvalidParameter", f"The parameter `Tasks.{index}` must be an object.")
        _only(raw, {"DataId", "Name", "Input"}, where)
        data_id = _data_id(raw, where, required=False)
        name = _string(raw, "Name", where)
        storage = _object(raw, "Input", where)
        if storage is None:
            raise ApiError(
                "MissingParameter", f"The request is missing a required parameter `{where}Input`."
            )
        _only(storage, {"Type", "Url", "BucketInfo"}, where + "Input.")
        kind = _string(storage, "Type", where + "Input.") or "URL"
        if kind not in ("URL", "COS"):
            raise ApiError("InvalidParameterValue", f"`{where}Input.Type` must be URL or COS.")
        url = _string(storage, "Url", where + "Input.")
        bucket = _object(storage, "BucketInfo", where + "Input.")
        if kind == "URL" and not url:
            raise ApiError(
                "MissingParameter",
                f"The request is missing a required parameter `{where}Input.Url`.",
            )
        if kind == "COS":
            if bucket is None:
                raise ApiError(
                    "MissingParameter",
                    f"The request is missing a required parameter `{where}Input.BucketInfo`.",
                )
            _only(bucket, {"Bucket", "Region", "Object"}, where + "Input.BucketInfo.")
            for key in ("Bucket", "Region", "Object"):
                _string(bucket, key, where + "Input.BucketInfo.", required=True)
        tasks.append(TaskParams(data_id=data_id, name=name, url=url, storage=kind))
    biz_type = _biz_type(params, required=False) or "default"
    kind = _string(params, "Type", "") or "AUDIO"
    if kind not in ("AUDIO", "LIVE_AUDIO", "AUDIO_AIGC"):
        raise ApiError("InvalidParameterValue", "`Type` must be AUDIO, LIVE_AUDIO or AUDIO_AIGC.")
    seed = _string(params, "Seed", "")
    callback = _string(params, "CallbackUrl", "")
    if callback and not callback.startswith(("http://", "https://")):
        raise ApiError("InvalidParameterValue", "`CallbackUrl` must be an http(s) URL.")
    user = _object(params, "User", "")
    if user is not None:
        _only(user, USER_FIELDS, "User.")
    return CreateParams(tasks=tasks, biz_type=biz_type, type=kind, seed=seed, callback_url=callback)


def check_task_id(params: Mapping[str, Any], extra: set[str] | None = None) -> str:
    """Validate a request whose one required field is ``TaskId``."""
    _only(params, {"TaskId"} | (extra or set()), "")
    return _string(params, "TaskId", "", required=True)


def _time(params: Mapping[str, Any], key: str) -> datetime | None:
    raw = _string(params, key, "")
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(
            "InvalidParameterValue", f"`{key}` must be an ISO 8601 time, got {raw!r}."
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DescribeTasksParams:
    """A validated DescribeTasks request."""

    limit: int
    filter: dict[str, str]
    after: int | None
    """The page continues after the task of this creation number (from ``PageToken``)."""
    start: datetime | None
    end: datetime | None


def check_describe_tasks(params: Mapping[str, Any]) -> DescribeTasksParams:
    """Validate DescribeTasks."""
    _only(params, {"Limit", "Filter", "PageToken", "StartTime", "EndTime"}, "")
    limit = params.get("Limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ApiError("InvalidParameter", "The parameter `Limit` must be an Integer.")
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError("InvalidParameterValue", f"`Limit` must be 1 to {MAX_PAGE}.")
    raw_filter = _object(params, "Filter", "") or {}
    _only(raw_filter, {"BizType", "Type", "Suggestion", "TaskStatus"}, "Filter.")
    task_filter = {k: _string(raw_filter, k, "Filter.") for k in raw_filter}
    status = task_filter.get("TaskStatus")
    if status and status not in TASK_STATUSES:
        raise ApiError(
            "InvalidParameterValue",
            f"`Filter.TaskStatus` must be one of {', '.join(TASK_STATUSES)}.",
        )
    token = _string(params, "PageToken", "")
    return DescribeTasksParams(
        limit=limit,
        filter={k: v for k, v in task_filter.items() if v},
        after=_after(token) if token else None,
        start=_time(params, "StartTime"),
        end=_time(params, "EndTime"),
    )


_TOKEN_PREFIX = "tasks-after:"


def _after(token: str) -> int:
    """The creation number a ``PageToken`` continues after, or InvalidParameterValue."""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith(_TOKEN_PREFIX):
            raise ValueError(text)
        return int(text.removeprefix(_TOKEN_PREFIX))
    except (ValueError, binascii.Error) as exc:
        raise ApiError(
            "InvalidParameterValue", "`PageToken` is not one this service issued."
        ) from exc


def page_token(after: int) -> str:
    """The opaque token of the page after the task created ``after``-th: a position in the
    order of creation, not an offset, so tasks created between pages shift nothing."""
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{after}".encode()).decode()


@dataclass(frozen=True, slots=True)
class SyncParams:
    """A validated CreateAudioModerationSyncTask request."""

    biz_type: str
    data_id: str
    file_format: str
    name: str
    content: bytes | None
    url: str


def check_sync(params: Mapping[str, Any]) -> SyncParams:
    """Validate CreateAudioModerationSyncTask (the audio itself is checked when decoded)."""
    _only(params, {"BizType", "DataId", "FileFormat", "Name", "FileContent", "FileUrl"}, "")
    biz_type = _biz_type(params, required=True)
    data_id = _data_id(params, "", required=True)
    file_format = _string(params, "FileFormat", "", required=True)
    if file_format not in ("wav", "mp3", "m4a"):
        raise ApiError("InvalidParameterValue", "`FileFormat` must be wav, mp3 or m4a.")
    name = _string(params, "Name", "")
    if len(name) > 64:
        raise ApiError("InvalidParameterValue", "`Name` must be at most 64 characters.")
    encoded = _string(params, "FileContent", "")
    url = _string(params, "FileUrl", "")
    if bool(encoded) == bool(url):
        raise ApiError(
            "MissingParameter" if not encoded else "InvalidParameter",
            "Exactly one of `FileContent` and `FileUrl` must be given.",
        )
    content = None
    if encoded:
        try:
            content = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ApiError(
                "InvalidParameterValue.InvalidContent", "`FileContent` is not base64."
            ) from exc
        if len(content) > MAX_SYNC_BYTES:
            raise ApiError(
                "InvalidParameterValue.InvalidFileContentSize",
                f"`FileContent` is {len(content)} bytes; at most {MAX_SYNC_BYTES} are accepted.",
            )
    return SyncParams(
        biz_type=biz_type,
        data_id=data_id,
        file_format=file_format,
        name=name,
        content=content,
        url=url,
    )
