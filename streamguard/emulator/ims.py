"""The IMS emulator: Tencent Cloud Image Moderation 2020-12-29 ``ImageModeration`` on
loopback, judged by one of our image engines (``shared/spec/ims-2020-12-29.md``).

Served by the same TC3 front as the AMS emulator (:class:`~streamguard.emulator.front
.ApiFront`, service ``ims``): signature, version and rate checks (100 requests per second
per SecretId, IMS's sync default), fault injection and the error envelope. The action
validates as the spec's section 5 recommends (one of FileContent/FileUrl, DataId and
BizType formats, base64 under 10 MB, at least 16 bytes, sides over 50 and under 10000
pixels, aspect under 90:1, a picture that decodes), judges the picture with the engine and
answers ``Suggestion``/``Label``/``SubLabel``/``Score`` with the detail arrays, echoing
``DataId`` and ``BizType``, with the file's MD5.

Not yet: ``FileUrl`` (answered ``UnsupportedOperation``), GIF ``Interval``/``MaxFrames``
(the first frame is judged), ``CreateImageModerationAsyncTask`` and its callbacks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from streamguard.core.frame import Picture
from streamguard.core.serving import start_site
from streamguard.core.verdict import Outcome, Verdict
from streamguard.emulator.faults import Faults
from streamguard.emulator.front import ApiFront
from streamguard.emulator.options import EmulatorStats
from streamguard.emulator.validation import ApiError
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.pictures import UndecodableImage, decode_picture, image_size

__all__ = ["IMS_VERSION", "SYNC_REQUESTS_PER_SECOND", "ImsEmulator"]

IMS_VERSION = "2020-12-29"
SYNC_REQUESTS_PER_SECOND = 100.0
MAX_BASE64 = 10 * 1024 * 1024
_FIELDS = frozenset(
    {"BizType", "DataId", "FileContent", "FileUrl", "Interval", "MaxFrames", "User", "Device"}
    | {"Type", "BizTag"}
)
_DATA_ID = re.compile(r"^[A-Za-z0-9_\-@#]{1,64}$")
_BIZ_TYPE = re.compile(r"^[A-Za-z0-9_]{3,32}$")


class ImsEmulator:
    """``async with ImsEmulator(engine, keys={id: key}) as ims``: serves on ``ims.url``."""

    def __init__(
        self,
        engine: ImageEngine,
        *,
        keys: Mapping[str, str],
        tokens: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        requests_per_second: float = SYNC_REQUESTS_PER_SECOND,
        faults: Faults | None = None,
    ) -> None:
        self.engine = engine
        self.faults = faults or Faults()
        self.stats = EmulatorStats()
        self._host, self._port = host, port
        self._front = ApiFront(
            "ims",
            IMS_VERSION,
            {"ImageModeration": self._image_moderation},
            self.stats,
            keys=keys,
            tokens=tokens or {},
            requests_per_second=requests_per_second,
            faults=lambda: self.faults,
        )
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def __aenter__(self) -> Self:
        # A base64 picture may be just under 10 MB; the JSON around it is small.
        app = web.Application(client_max_size=MAX_BASE64 + 64 * 1024)
        app.router.add_route("*", "/", self._front.handle)
        self._front.open()
        self._runner, self._port = await start_site(app, self._host, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._front.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _image_moderation(self, params: dict[str, Any], secret_id: str) -> dict[str, Any]:
        data = _validated(params)
        picture = await asyncio.to_thread(_picture, data)
        data_id, biz_type = params.get("DataId", ""), params.get("BizType", "")
        [verdict] = await self.engine.judge([(data_id or "ims", picture)])
        if verdict.outcome is not Outcome.MODERATED:
            raise ApiError(
                "ResourceUnavailable.ModelCallFailed", f"model call failed: {verdict.reason}"
            )
        return {
            **_result(verdict),
            "DataId": data_id,
            "BizType": biz_type,
            "Extra": "",
            "FileMD5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        }


def _validated(params: Mapping[str, Any]) -> bytes:
    """The image bytes of a valid request; ``ApiError`` with the spec's code otherwise."""
    unknown = sorted(set(params) - _FIELDS)
    if unknown:
        raise ApiError("UnknownParameter", f"The parameter `{unknown[0]}` is not recognized.")
    data_id = params.get("DataId")
    if data_id is not None and (not isinstance(data_id, str) or not _DATA_ID.match(data_id)):
        raise ApiError("InvalidParameterValue.InvalidDataId", "DataId: 1-64 of A-Z a-z 0-9 _-@#.")
    biz_type = params.get("BizType")
    if biz_type is not None and (not isinstance(biz_type, str) or not _BIZ_TYPE.match(biz_type)):
        raise ApiError("InvalidParameterValue.InvalidParameter", "BizType: 3-32 of A-Z a-z 0-9 _.")
    if params.get("Type", "IMAGE") not in ("IMAGE", "IMAGE_AIGC"):
        raise ApiError("InvalidParameterValue.InvalidParameter", "Type: IMAGE or IMAGE_AIGC.")
    content, url = params.get("FileContent"), params.get("FileUrl")
    if url and not content:
        raise ApiError("UnsupportedOperation", "The emulator does not fetch FileUrl yet.")
    if not isinstance(content, str) or not content:
        raise ApiError("InvalidParameterValue.InvalidContent", "Give FileContent or FileUrl.")
    if len(content) >= MAX_BASE64:
        raise ApiError(
            "InvalidParameterValue.InvalidFileContentSize", "FileContent must be under 10 MB."
        )
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            "InvalidParameterValue.InvalidContent", "FileContent is not base64."
        ) from exc
    if len(data) < 16:
        raise ApiError("InvalidParameter.ImageDataTooSmall", "The image is under 16 bytes.")
    return data


def _picture(data: bytes) -> Picture:
    """The picture, once its size and shape are within IMS's limits. Blocking."""
    try:
        width, height = image_size(data)
        short, long = sorted((width, height))
        if short <= 50:
            raise ApiError("InvalidParameter.ImageSizeTooSmall", "Sides must be over 50 px.")
        if long >= 10_000:
            raise ApiError(
                "InvalidParameterValue.InvalidFileContentSize", "Sides must be under 10000 px."
            )
        if long / short >= 90:
            raise ApiError(
                "InvalidParameter.ImageAspectRatioTooLarge", "The aspect ratio must be under 90:1."
            )
        return decode_picture(data)
    except UndecodableImage as exc:
        raise ApiError("InvalidParameterValue.InvalidImageContent", str(exc)) from exc


def _result(verdict: Verdict) -> dict[str, Any]:
    """The verdict in ImageModeration's fields."""
    label_results: list[dict[str, Any]] = []
    if verdict.hit:
        label_results.append(
            {
                "Scene": verdict.label,
                "Suggestion": verdict.suggestion.value,
                "Label": verdict.label,
                "SubLabel": verdict.sub_label,
                "Score": verdict.score,
                "Details": [],
            }
        )
    return {
        "Suggestion": verdict.suggestion.value,
        "Label": verdict.label,
        "SubLabel": verdict.sub_label,
        "Score": verdict.score,
        "LabelResults": label_results,
        "ObjectResults": [],
        "OcrResults": [],
        "LibResults": [],
        "RecognitionResults": [],
    }
