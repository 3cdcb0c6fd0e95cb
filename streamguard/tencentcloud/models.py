"""Typed AMS 2020-12-29 requests and responses (spec §3), tolerant of the service's quirks.

Responses are parsed leniently, because the service may send any field as null (the official
SDK's models make nearly every field optional): unknown fields are ignored; numbers arrive as
ints, floats (``Score`` 97.5) or strings (``Total``, ``Duration``, ``OffsetTime`` …); a
nested object may be null or of another type (it is then None); an array may be null, an
object or a scalar (it is then a list of the objects it holds). What still cannot be read is
``AmsInvalidResponse``, raised by ``parse``. Field names are the
snake_case of the API's PascalCase names; ``to_api()`` gives the wire form of a request.
"""

from __future__ import annotations

import contextlib
import math
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_pascal

from streamguard.tencentcloud.errors import AmsInvalidResponse

__all__ = [
    "AigcResult",
    "AudioResult",
    "AudioSegment",
    "CancelTaskResponse",
    "CreateTasksRequest",
    "CreateTasksResponse",
    "DescribeTasksRequest",
    "DescribeTasksResponse",
    "HitInfo",
    "HitPosition",
    "InputInfo",
    "LabelResult",
    "LanguageResult",
    "MediaInfo",
    "MoanResult",
    "RecognitionResult",
    "RecognitionTag",
    "SpeakerResult",
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
    "parse",
]

TaskStatus = Literal["PENDING", "RUNNING", "FINISH", "ERROR", "CANCELLED"]
"""Where an AMS task is in its life (spec §3.7)."""


def _number(value: Any) -> float | None:
    """A finite number from an int, float, bool or numeric string; None otherwise."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _lenient_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())  # exact for long integers
    number = _number(value)
    return round(number) if number is not None else 0


def _lenient_float(value: Any) -> float:
    number = _number(value)
    return number if number is not None else 0.0


def _lenient_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return ""  # None, or an object or array where text belongs


def _lenient_objects(value: Any) -> list[Any]:
    """A list of JSON objects: null and non-lists are empty, a lone object is a list of one,
    and items that are not objects are dropped (models built in code count as objects)."""
    if isinstance(value, dict | BaseModel):
        return [value]
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict | BaseModel)]


def _lenient_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    return [_lenient_str(item) for item in value if isinstance(item, str | int | float)]


def _lenient_object(value: Any) -> Any:
    """A nested object, or None for null or anything that is not an object."""
    return value if isinstance(value, dict | BaseModel) else None


Int = Annotated[int, BeforeValidator(_lenient_int)]
"""An integer, from an int, a float (rounded) or a numeric string; 0 when unreadable."""
Float = Annotated[float, BeforeValidator(_lenient_float)]
"""A finite number, from an int, a float or a numeric string; 0.0 when unreadable."""
Str = Annotated[str, BeforeValidator(_lenient_str)]
"""Text; numbers become their text, null and objects become ""."""
Strings = Annotated[list[str], BeforeValidator(_lenient_strings)]
"""A list of text; anything but a list is empty (a lone string is a list of one)."""
_Objects = BeforeValidator(_lenient_objects)
_Object = BeforeValidator(_lenient_object)


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

    results: Annotated[list[TaskResult], _Objects] = []
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


class HitPosition(_Response):
    """Where a keyword hit lies in the slice's text (character offsets)."""

    start: Int = 0
    end: Int = 0


class HitInfo(_Response):
    """One hit behind a ``TextResult``: a keyword (or a model) and its positions."""

    type: Str = ""
    keyword: Str = ""
    lib_name: Str = ""
    positions: Annotated[list[HitPosition], _Objects] = []


class TextResult(_Response):
    """A transcript hit: label, keywords and the library that flagged them."""

    label: Str = ""
    keywords: Strings = []
    lib_id: Str = ""
    lib_name: Str = ""
    score: Int = 0
    suggestion: Str = ""
    lib_type: Int = 0
    sub_label: Str = ""
    hit_infos: Annotated[list[HitInfo], _Objects] = []


class MoanResult(_Response):
    """A moan detection, with start and end in seconds."""

    label: Str = ""
    score: Int = 0
    start_time: Float = 0.0
    end_time: Float = 0.0
    sub_label: Str = ""
    suggestion: Str = ""


class LanguageResult(_Response):
    """A language AMS heard in a slice (``cmn``, ``English``, ``Other`` …), start and end
    in seconds."""

    label: Str = ""
    score: Int = 0
    start_time: Float = 0.0
    end_time: Float = 0.0


class SpeakerResult(_Response):
    """A speaker AMS recognised in a slice (``EndTime`` is a string on the wire)."""

    label: Str = ""
    score: Int = 0
    start_time: Float = 0.0
    end_time: Float = 0.0


class RecognitionTag(_Response):
    """One tag of a recognition (``Teenager``, ``Male`` …); times in milliseconds."""

    name: Str = ""
    score: Int = 0
    start_time: Float = 0.0
    end_time: Float = 0.0


class RecognitionResult(_Response):
    """A recognition family (``Teenager``, ``Gender``) and its tags."""

    label: Str = ""
    tags: Annotated[list[RecognitionTag], _Objects] = []


class LabelResult(_Response):
    """Song recognition: what was heard (``name``) and, maybe, a suggestion about it."""

    scene: Str = ""
    suggestion: Str = ""
    """Typed Integer by the SDK, shown as text in the docs' example."""
    label: Str = ""
    name: Str = ""
    score: Int = 0
    start_time: Float = 0.0
    end_time: Float = 0.0


class AigcResult(_Response):
    """AI-generated-audio detection in a slice, with its suggestion."""

    label: Str = ""
    score: Int = 0
    start_time: Float = 0.0
    end_time: Float = 0.0
    suggestion: Str = ""
    sub_label: Str = ""


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
    text_results: Annotated[list[TextResult], _Objects] = []
    moan_results: Annotated[list[MoanResult], _Objects] = []
    language_results: Annotated[list[LanguageResult], _Objects] = []
    sub_label: Str = ""
    recognition_results: Annotated[list[RecognitionResult], _Objects] = []
    speaker_results: Annotated[list[SpeakerResult], _Objects] = []
    label_results: Annotated[list[LabelResult], _Objects] = []
    aigc_recognition_results: Annotated[
        list[AigcResult], _Objects, Field(alias="AIGCRecognitionResults")
    ] = []


class AudioSegment(_Response):
    """One slice of a task: its offset (seconds, a string on the wire) and its result."""

    offset_time: Str = "0"
    result: Annotated[AudioResult | None, _Object] = None
    """None when AMS sent none: the slice's judgement is unknown."""
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
    labels: Annotated[list[TaskLabel], _Objects] = []
    input_info: Annotated[InputInfo | None, _Object] = None
    audio_text: Str = ""
    audio_segments: Annotated[list[AudioSegment], _Objects] = []
    error_type: Str = ""
    error_description: Str = ""
    created_at: Str = ""
    updated_at: Str = ""
    label: Str = ""
    media_info: Annotated[MediaInfo | None, _Object] = None
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
    labels: Annotated[list[TaskLabel], _Objects] = []
    media_info: Annotated[MediaInfo | None, _Object] = None
    created_at: Str = ""
    updated_at: Str = ""


class DescribeTasksResponse(_Response):
    """A page of tasks; ``page_token`` is empty on the last page."""

    total: Int = 0
    data: Annotated[list[TaskData], _Objects] = []
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
    text_results: Annotated[list[TextResult], _Objects] = []
    moan_results: Annotated[list[MoanResult], _Objects] = []
    language_results: Annotated[list[LanguageResult], _Objects] = []
    sub_label: Str = ""
    duration: Int = 0
    """Milliseconds (a string on the wire)."""
    hit_flag: Int = 0
    score: Int = 0
    request_id: Str = ""


_Model = TypeVar("_Model", bound=BaseModel)


def parse(model: type[_Model], answer: dict[str, Any]) -> _Model:
    """``answer`` (a ``Response`` object) read as ``model``.

    Raises ``AmsInvalidResponse``, carrying the answer's RequestId, when even the lenient
    reading fails, so that callers meet an ``AmsError`` and never a pydantic error.
    """
    try:
        return model.model_validate(answer)
    except (ValueError, TypeError, RecursionError) as exc:  # ValidationError is a ValueError
        request_id = answer.get("RequestId")
        raise AmsInvalidResponse(
            f"{model.__name__} could not be read: {str(exc)[:300]}",
            request_id if isinstance(request_id, str) else None,
        ) from exc
