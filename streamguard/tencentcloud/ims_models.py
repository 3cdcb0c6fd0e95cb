"""Typed IMS 2020-12-29 requests and responses (IMS spec §3), read as leniently as AMS's.

The same rules as ``models`` (whose lenient field types these reuse): unknown fields are
ignored, numbers may arrive as ints, floats or strings, every nested object may be null or
of another type (then None) and every array null, absent, an object or a scalar (then the
list of the objects it holds). What still cannot be read is ``AmsInvalidResponse`` from
``parse``. A callback of ``CreateImageModerationAsyncTask`` has the ImageModeration answer's
fields, with or without a ``Response`` wrapper: ``callback_result`` reads both.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from streamguard.tencentcloud.errors import AmsInvalidResponse
from streamguard.tencentcloud.models import (
    Float,
    Int,
    Str,
    Strings,
    _lenient_object,
    _lenient_objects,
    _Request,
    _Response,
    parse,
)

__all__ = [
    "AsyncTaskRequest",
    "AsyncTaskResponse",
    "Device",
    "ImageModerationRequest",
    "ImageModerationResponse",
    "LabelDetailItem",
    "LabelResult",
    "LibDetail",
    "LibResult",
    "Location",
    "ObjectDetail",
    "ObjectResult",
    "OcrHitInfo",
    "OcrResult",
    "OcrTextDetail",
    "Positions",
    "RecognitionResult",
    "RecognitionTag",
    "User",
    "callback_result",
    "parse",
]

_Objects = BeforeValidator(_lenient_objects)
_Object = BeforeValidator(_lenient_object)

# --- requests -------------------------------------------------------------------------------


class User(_Request):
    """Who posted the image (all optional; ``account_type`` is text even though a digit)."""

    user_id: str | None = None
    nickname: str | None = None
    account_type: str | None = None
    gender: int | None = None
    age: int | None = None
    level: int | None = None
    phone: str | None = None
    desc: str | None = None
    head_url: str | None = None


class Device(_Request):
    """The poster's device (all optional)."""

    ip: str | None = None
    mac: str | None = None
    token_id: str | None = None
    device_id: str | None = None
    imei: str | None = Field(None, alias="IMEI")
    idfa: str | None = Field(None, alias="IDFA")
    idfv: str | None = Field(None, alias="IDFV")
    ip_type: int | None = None


class ImageModerationRequest(_Request):
    """ImageModeration: one image, as base64 ``file_content`` or a ``file_url`` (exactly one)."""

    biz_type: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{3,32}$")
    data_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_\-@#]{1,64}$")
    file_content: str | None = None
    file_url: str | None = None
    interval: int | None = Field(None, ge=0)
    max_frames: int | None = Field(None, ge=0)
    user: User | None = None
    device: Device | None = None
    type: Literal["IMAGE"] | None = None

    @model_validator(mode="after")
    def _one_file(self) -> ImageModerationRequest:
        if (self.file_content is None) == (self.file_url is None):
            raise ValueError("give exactly one of file_content and file_url")
        return self


class AsyncTaskRequest(ImageModerationRequest):
    """CreateImageModerationAsyncTask: as ImageModeration, the result posted to
    ``callback_url`` (no TaskId: ``data_id`` is the only link, so make it unique)."""

    callback_url: str


# --- responses ------------------------------------------------------------------------------


class Location(_Response):
    """A box: top-left corner, size and counter-clockwise rotation (pixels, degrees)."""

    x: Float = 0.0
    y: Float = 0.0
    width: Float = 0.0
    height: Float = 0.0
    rotate: Float = 0.0


class LabelDetailItem(_Response):
    """A sub-label a classification hit."""

    id: Int = 0
    name: Str = ""
    score: Int = 0


class LabelResult(_Response):
    """A classification model's hit."""

    scene: Str = ""
    suggestion: Str = ""
    label: Str = ""
    sub_label: Str = ""
    score: Int = 0
    details: Annotated[list[LabelDetailItem], _Objects] = Field(default_factory=list)


class ObjectDetail(_Response):
    """One detected object (a QR code's ``value`` is the URL it encodes)."""

    id: Int = 0
    name: Str = ""
    value: Str = ""
    score: Int = 0
    location: Annotated[Location | None, _Object] = None
    sub_label: Str = ""
    object_id: Str = ""


class ObjectResult(_Response):
    """An object detection hit (entities, ad logos, QR codes)."""

    scene: Str = ""
    suggestion: Str = ""
    label: Str = ""
    sub_label: Str = ""
    score: Int = 0
    names: Strings = Field(default_factory=list)
    details: Annotated[list[ObjectDetail], _Objects] = Field(default_factory=list)


class Positions(_Response):
    """Where a hit lies in the text (the unit is not documented)."""

    start: Int = 0
    end: Int = 0


class OcrHitInfo(_Response):
    """Why OCR'd text hit: a model or a keyword of a library."""

    type: Str = ""
    keyword: Str = ""
    lib_name: Str = ""
    positions: Annotated[list[Positions], _Objects] = Field(default_factory=list)
    label: Str = ""


class OcrTextDetail(_Response):
    """A piece of text found in the image and its verdict."""

    text: Str = ""
    label: Str = ""
    lib_id: Str = ""
    lib_name: Str = ""
    keywords: Strings = Field(default_factory=list)
    score: Int = 0
    location: Annotated[Location | None, _Object] = None
    rate: Int = 0
    sub_label: Str = ""
    hit_infos: Annotated[list[OcrHitInfo], _Objects] = Field(default_factory=list)


class OcrResult(_Response):
    """The text in the image and its verdict."""

    scene: Str = ""
    suggestion: Str = ""
    label: Str = ""
    sub_label: Str = ""
    score: Int = 0
    details: Annotated[list[OcrTextDetail], _Objects] = Field(default_factory=list)
    text: Str = ""


class LibDetail(_Response):
    """A risk-library sample the image resembles."""

    id: Int = 0
    lib_id: Str = ""
    lib_name: Str = ""
    image_id: Str = ""
    label: Str = ""
    tag: Str = ""
    score: Int = 0


class LibResult(_Response):
    """A match against a risk library (block or allow)."""

    scene: Str = ""
    suggestion: Str = ""
    label: Str = ""
    sub_label: Str = ""
    score: Int = 0
    details: Annotated[list[LibDetail], _Objects] = Field(default_factory=list)


class RecognitionTag(_Response):
    """A scene tag (recognition only, no verdict)."""

    name: Str = ""
    score: Int = 0
    location: Annotated[Location | None, _Object] = None


class RecognitionResult(_Response):
    """Scene-model tags: information, never a verdict."""

    label: Str = ""
    tags: Annotated[list[RecognitionTag], _Objects] = Field(default_factory=list)


class ImageModerationResponse(_Response):
    """ImageModeration's answer, and the body of an async task's callback."""

    suggestion: Str = ""
    label: Str = ""
    sub_label: Str = ""
    score: Int = 0
    label_results: Annotated[list[LabelResult], _Objects] = Field(default_factory=list)
    object_results: Annotated[list[ObjectResult], _Objects] = Field(default_factory=list)
    ocr_results: Annotated[list[OcrResult], _Objects] = Field(default_factory=list)
    lib_results: Annotated[list[LibResult], _Objects] = Field(default_factory=list)
    data_id: Str = ""
    biz_type: Str = ""
    extra: Str = ""
    file_md5: Str = Field("", alias="FileMD5")
    recognition_results: Annotated[list[RecognitionResult], _Objects] = Field(default_factory=list)
    store_url: Str = ""
    reason: Str = ""
    request_id: Str = ""


class AsyncTaskResponse(_Response):
    """CreateImageModerationAsyncTask's answer: the DataId echoed, no TaskId."""

    data_id: Str = ""
    request_id: Str = ""


def callback_result(body: bytes) -> ImageModerationResponse | None:
    """A callback body (bare or wrapped in ``Response``) read; None when it is not a JSON
    object, cannot be read, or names no DataId (nothing to match it to)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and isinstance(document.get("Response"), dict):
        document = document["Response"]
    if not isinstance(document, dict):
        return None
    try:
        result = parse(ImageModerationResponse, document)
    except AmsInvalidResponse:
        return None
    return result if result.data_id else None
