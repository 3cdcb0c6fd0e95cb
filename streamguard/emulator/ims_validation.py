"""Parameter validation of the two IMS actions, answering with the codes IMS spec §5
recommends for an emulator (the service documents no mapping).

A wrong type is ``InvalidParameter``, an unknown key ``UnknownParameter`` and an absent
CallbackUrl ``MissingParameter``; then: no file field or bad base64 →
``InvalidParameterValue.InvalidContent``, an empty FileContent → ``…EmptyImageContent``,
base64 of 10 MB or more → ``…InvalidFileContentSize``, a bad DataId → ``…InvalidDataId``, a
BizType outside 3-32 ``[A-Za-z0-9_]`` → ``…InvalidParameter``, a bad CallbackUrl →
``…InvalidCallbackUrl``. When both FileContent and FileUrl are sent, FileContent wins (the
service's choice is not confirmed). FileUrlList and TextContent (the "moderation Agent") are
accepted and not judged.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from streamguard.emulator.validation import ApiError

__all__ = [
    "ASYNC_FIELDS",
    "MAX_BASE64",
    "SYNC_FIELDS",
    "ImsParams",
    "check_ims",
]

MAX_BASE64 = 10 * 1024 * 1024
BIZ_TYPE = re.compile(r"^[A-Za-z0-9_]{3,32}$")
DATA_ID = re.compile(r"^[A-Za-z0-9_\-@#]{1,64}$")
SYNC_FIELDS = frozenset(
    {"BizType", "DataId", "FileContent", "FileUrl", "Interval", "MaxFrames", "User", "Device"}
    | {"Type", "BizTag"}
)
ASYNC_FIELDS = SYNC_FIELDS | {"CallbackUrl", "FileUrlList", "TextContent"}
_TYPES = {"ImageModeration": ("IMAGE", "IMAGE_AIGC"), "async": ("IMAGE", "IMAGE_AIGC", "IMAGE_LLM")}
_USER = {
    "UserId": str, "Nickname": str, "AccountType": str, "Gender": int, "Age": int,
    "Level": int, "Phone": str, "Desc": str, "HeadUrl": str,
}  # fmt: skip
_DEVICE = {
    "Ip": str, "Mac": str, "TokenId": str, "DeviceId": str, "IMEI": str, "IDFA": str,
    "IDFV": str, "IpType": int,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImsParams:
    """A valid ImageModeration or CreateImageModerationAsyncTask request."""

    biz_type: str
    data_id: str
    content: bytes | None
    """The decoded FileContent; None when the image comes by ``file_url``."""
    file_url: str
    interval: int
    max_frames: int
    callback_url: str


def _typed(params: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
    value = params.get(key)
    if value is None:
        return None
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ApiError(
            "InvalidParameter", f"The parameter `{where}{key}` must be a {kind.__name__}."
        )
    return value


def _only(params: Mapping[str, Any], allowed: frozenset[str], where: str = "") -> None:
    for key in params:
        if key not in allowed:
            raise ApiError("UnknownParameter", f"The parameter `{where}{key}` is not recognized.")


def _structure(params: Mapping[str, Any], key: str, fields: dict[str, type]) -> None:
    value = params.get(key)
    if value is None:
        return
    if not isinstance(value, dict):
        raise ApiError("InvalidParameter", f"The parameter `{key}` must be an object.")
    _only(value, frozenset(fields), f"{key}.")
    for name, kind in fields.items():
        _typed(value, name, kind, f"{key}.")


def _content(params: Mapping[str, Any]) -> tuple[bytes | None, str]:
    content = _typed(params, "FileContent", str)
    url = _typed(params, "FileUrl", str)
    if content is not None:
        if not content:
            raise ApiError("InvalidParameterValue.EmptyImageContent", "FileContent is empty.")
        if len(content) >= MAX_BASE64:
            raise ApiError(
                "InvalidParameterValue.InvalidFileContentSize",
                f"FileContent is {len(content)} characters of base64; it must stay under 10 MB.",
            )
        try:
            return base64.b64decode(content, validate=True), ""
        except (binascii.Error, ValueError) as exc:
            raise ApiError(
                "InvalidParameterValue.InvalidContent", "FileContent is not valid base64."
            ) from exc
    if not url:
        raise ApiError(
            "InvalidParameterValue.InvalidContent", "Give FileContent or FileUrl (one of them)."
        )
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiError("InvalidParameterValue.InvalidParameter", "FileUrl must be an http(s) link.")
    return None, url


def _callback(params: Mapping[str, Any]) -> str:
    url: str = _typed(params, "CallbackUrl", str) or ""
    if not url:
        raise ApiError(
            "MissingParameter", "The request is missing a required parameter `CallbackUrl`."
        )
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiError(
            "InvalidParameterValue.InvalidCallbackUrl", "CallbackUrl must be an http(s) URL."
        )
    return url


def _frames(params: Mapping[str, Any], key: str, default: int) -> int:
    value = _typed(params, key, int)
    if value is None:
        return default
    if value < 0:
        raise ApiError("InvalidParameterValue.InvalidParameter", f"{key} must not be negative.")
    return int(value)


def _labels(params: Mapping[str, Any], kind: str) -> tuple[str, str]:
    biz_type = _typed(params, "BizType", str) or ""
    if biz_type and not BIZ_TYPE.match(biz_type):
        raise ApiError(
            "InvalidParameterValue.InvalidParameter",
            "BizType must be 3-32 letters, digits or underscores.",
        )
    data_id = _typed(params, "DataId", str) or ""
    if data_id and not DATA_ID.match(data_id):
        raise ApiError(
            "InvalidParameterValue.InvalidDataId",
            "DataId must be at most 64 letters, digits or _ - @ #.",
        )
    kind_of = _typed(params, "Type", str)
    if kind_of is not None and kind_of not in _TYPES[kind]:
        raise ApiError(
            "InvalidParameterValue.InvalidParameter",
            f"Type must be one of {', '.join(_TYPES[kind])}.",
        )
    return biz_type, data_id


def check_ims(params: Mapping[str, Any], *, asynchronous: bool) -> ImsParams:
    """The request's parameters, or the ApiError IMS answers with."""
    _only(params, ASYNC_FIELDS if asynchronous else SYNC_FIELDS)
    for key in ("BizTag", "TextContent"):
        _typed(params, key, str)
    _typed(params, "FileUrlList", list)
    _structure(params, "User", _USER)
    _structure(params, "Device", _DEVICE)
    biz_type, data_id = _labels(params, "async" if asynchronous else "ImageModeration")
    callback_url = _callback(params) if asynchronous else ""
    content, url = _content(params)
    return ImsParams(
        biz_type=biz_type,
        data_id=data_id,
        content=content,
        file_url=url,
        interval=_frames(params, "Interval", 0),
        max_frames=_frames(params, "MaxFrames", 1),
        callback_url=callback_url,
    )
