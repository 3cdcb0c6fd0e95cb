"""Typed AMS 2020-12-29 requests and responses (spec §3), tolerant of the service's quirks.

Responses ignore unknown fields and parse numbers that arrive as strings (``Total``,
``Duration``, ``OffsetTime`` …) and arrays that arrive as ``null``. Field names are the
snake_case of the API's PascalCase names; ``to_api()`` gives the wire form of a request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_pascal

__all__ = [
    "AudioResult",
    "AudioSegment",
    "CancelTaskResponse",
    "CreateTasksRequest",
    "CreateTasksResponse",
    "DescribeTasksRequest",
    "DescribeTasksResponse",
    "InputInfo",
    "MediaInfo",
    "MoanResult",
    "StorageInfo",
    "SyncTaskRequest",
    "SyncTaskResponse",
    "TaskData",
    "TaskDetail",
    "TaskFilter",
    "TaskInput",
    "TaskLabel",
    "TaskResult",
    "TaskStatus",
    "TextResult",
]

TaskStatus = Literal["PENDING", "RUNNING", "FINISH", "ERROR", "CANCELLED"]
"""Where an AMS task is in its life (spec §3.7)."""


def _lenient_int(value: Any) -> Any:
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return value  # let pydantic name the field and the bad value
    return value


def _lenient_float(value: Any) -> Any:
    if value is None or value == "":
        return 0.0
    return value


def _lenient_str(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _lenient_list(value: Any) -> Any:
    return [] if value is None else value


Int = Annotated[int, BeforeValidator(_lenient_int)]
Float = Annotated[float, BeforeValidator(_lenient_float)]
Str = Annotated[str, BeforeValidator(_lenient_str)]


class _Response(BaseModel):
    """A part of an AMS answer: PascalCase on the wire, unknown fields ignored."""

    model_config = ConfigDict(
        extra="ignore", alias_generator=to_pascal, validate_by_name=True, frozen=True
    )


class _Request(BaseModel):
    """A part of an AMS request; unset optional fields are not sent."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_pascal, validate_by_name=True, frozen=True
    )

    def to_api(self) -> dict[str, Any]:
        """The JSON object the API expects for this request."""
        return self.model_dump(by_alias=True, exclude_none=True)


# --- requests -------------------------------------------------------------------------------


class StorageInfo(_Request):
    """Where AMS fetches a task's audio: a URL (the daemon's signed delivery URL)."""

    type: Literal["URL", "COS"] = "URL"
    url: str | None = None


class TaskInput(_Request):
    """One task of a Create call; ``data_id`` is the segment id."""

    data_id: str
    name: str | None = None
    input: StorageInfo


class CreateTasksRequest(_Request):
    """CreateAudioModerationTask: up to 10 tasks sharing one BizType and Type."""

    tasks: list[TaskInput] = Field(min_length=1, max_length=10)
    biz_type: str | None = None
    type: Literal["AUDIO", "LIVE_AUDIO"] = "AUDIO"
    seed: str | None = None
    callback_url: str | None = None


class TaskFilter(_Request):
    """DescribeTasks filter; an unset field does not filter."""

    biz_type: str | None = None
    type: str | None = None
    suggestion: str | None = None
    task_status: TaskStatus | None = None


class DescribeTasksRequest(_Request):
    """DescribeTasks: one page of tasks created between ``start_time`` and ``end_time``."""

    limit: int | None = None
    filter: TaskFilter | None = None
    page_token: str | None = None
    start_time: str | None = None
    end_time: str | None = None


class SyncTaskRequest(_Request):
    """CreateAudioModerationSyncTask: a short clip (≤ 60 s) judged in the call."""

    biz_type: str
    data_id: str
    file_format: Literal["wav", "mp3", "m4a"]
    name: str | None = None
    file_content: str | None = None
    file_url: str | None = None


# --- responses ------------------------------------------------------------------------------


class TaskResult(_Response):
    """Per-task outcome of a Create call: ``code`` is ``OK`` or an error code."""

    data_id: Str = ""
    task_id: Str = ""
    code: Str = ""
    message: Str = ""


class CreateTasksResponse(_Response):
    """CreateAudioModerationTask's answer: one result per task (check each ``code``)."""

    results: Annotated[list[TaskResult], BeforeValidator(_lenient_list)] = []
    request_id: Str = ""


class TaskLabel(_Response):
    """A label a task hit, with its suggestion and score (0-100)."""

    label: Str = ""
    suggestion: Str = ""
    score: Int = 0
    sub_label: Str = ""


class MediaInfo(_Response):
    """What AMS learned about the media (its ``duration`` units vary, see spec §3.6)."""

    codecs: Str = ""
    duration: Int = 0


class InputInfo(_Response):
    """How a task's audio was given."""

    type: Str = ""
    url: Str = ""


class TextResult(_Response):
    """A transcript hit: label, keywords and the library that flagged them."""

    label: Str = ""
    keywords: Annotated[list[str], BeforeValidator(_lenient_list)] = []
    lib_id: Str = ""
    lib_name: Str = ""
    score: Int = 0
    suggestion: Str = ""
    lib_type: Int = 0
    sub_label: Str = ""


class MoanResult(_Response):
    """A moan detection, with start and end in seconds."""

    label: Str = ""
    score: Int = 0
    start_time: Float = 0.0
    end_time: Float = 0.0
    sub_label: Str = ""
    suggestion: Str = ""


class AudioResult(_Response):
    """The judgement of one 15/30/60 s slice of a task."""

    hit_flag: Int = 0
    label: Str = ""
    suggestion: Str = ""
    score: Int = 0
    text: Str = ""
    url: Str = ""
    duration: Int = 0
    """Milliseconds (a string on the wire)."""
    extra: Str = ""
    text_results: Annotated[list[TextResult], BeforeValidator(_lenient_list)] = []
    moan_results: Annotated[list[MoanResult], BeforeValidator(_lenient_list)] = []
    sub_label: Str = ""


class AudioSegment(_Response):
    """One slice of a task: its offset (seconds, a string on the wire) and its result."""

    offset_time: Str = "0"
    result: AudioResult = AudioResult()
    created_at: Str = ""

    @property
    def offset_seconds(self) -> float:
        """``OffsetTime`` as a number (0 when unparseable)."""
        try:
            return float(self.offset_time)
        except ValueError:
            return 0.0


class TaskDetail(_Response):
    """DescribeTaskDetail's answer (also the body of a callback)."""

    task_id: Str = ""
    data_id: Str = ""
    biz_type: Str = ""
    name: Str = ""
    status: Str = ""
    type: Str = ""
    suggestion: Str = ""
    labels: Annotated[list[TaskLabel], BeforeValidator(_lenient_list)] = []
    input_info: InputInfo | None = None
    audio_text: Str = ""
    audio_segments: Annotated[list[AudioSegment], BeforeValidator(_lenient_list)] = []
    error_type: Str = ""
    error_description: Str = ""
    created_at: Str = ""
    updated_at: Str = ""
    label: Str = ""
    media_info: MediaInfo | None = None
    request_id: Str = ""


class TaskData(_Response):
    """One task in a DescribeTasks page: status and summary, no segments."""

    data_id: Str = ""
    task_id: Str = ""
    status: Str = ""
    name: Str = ""
    biz_type: Str = ""
    type: Str = ""
    suggestion: Str = ""
    labels: Annotated[list[TaskLabel], BeforeValidator(_lenient_list)] = []
    media_info: MediaInfo | None = None
    created_at: Str = ""
    updated_at: Str = ""


class DescribeTasksResponse(_Response):
    """A page of tasks; ``page_token`` is empty on the last page."""

    total: Int = 0
    data: Annotated[list[TaskData], BeforeValidator(_lenient_list)] = []
    page_token: Str = ""
    request_id: Str = ""


class CancelTaskResponse(_Response):
    """CancelTask's answer: a RequestId means the cancel was accepted."""

    request_id: Str = ""


class SyncTaskResponse(_Response):
    """CreateAudioModerationSyncTask's answer: the clip's judgement."""

    data_id: Str = ""
    name: Str = ""
    biz_type: Str = ""
    suggestion: Str = ""
    label: Str = ""
    asr_text: Str = ""
    text_results: Annotated[list[TextResult], BeforeValidator(_lenient_list)] = []
    moan_results: Annotated[list[MoanResult], BeforeValidator(_lenient_list)] = []
    sub_label: Str = ""
    duration: Int = 0
    """Milliseconds (a string on the wire)."""
    hit_flag: Int = 0
    score: Int = 0
    request_id: Str = ""
