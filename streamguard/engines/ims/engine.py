"""``ImsImageEngine``: Tencent Cloud IMS judges pictures (video frames, API images).

It has the frames' image-engine shape (``name``, ``version``, ``judge(pictures)`` →
one ``Verdict`` per picture in order, ``aclose``) and takes each picture as an RGB array
or as JPEG bytes; arrays are encoded to JPEG off the event loop. A picture travels as
``FileContent`` (frames are in memory: no URL for IMS to fetch, no download delay) or, when
the engine has ``PictureUrls`` (a public base URL is configured), as ``FileUrl``: a signed,
expiring URL its listener serves until the verdict is in. Under
the BizType of the stream's policy profile (``profiles.*.image_biz_type``, passed as
``biz_type``), else the one ``ImsEngineSettings.biz_type_for`` gives.

In ``sync`` mode each picture is one ``ImageModeration``; in ``async`` mode one
``CreateImageModerationAsyncTask`` whose result comes back to the ``ImsCallbackInbox``
(matched by a DataId unique to the submission), or the picture fails after
``callback_deadline``. ``judge`` never raises for a picture: a call that failed after the
client's retries is a ``failed`` verdict naming the IMS code (a refused picture, an
account problem, or trouble), never a Pass.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import logging
import re
from collections import Counter
from collections.abc import Sequence

from streamguard.core.errors import AmsError, EngineError
from streamguard.core.verdict import Verdict
from streamguard.engines.ims import verdicts
from streamguard.engines.ims.file_urls import PictureUrls
from streamguard.engines.ims.inbox import ImsCallbackInbox
from streamguard.engines.ims.jpeg import Picture, encode_jpeg
from streamguard.engines.ims.settings import ImsEngineSettings
from streamguard.tencentcloud.ims_client import ImsClient
from streamguard.tencentcloud.ims_errors import bad_image, operator_problem
from streamguard.tencentcloud.ims_models import AsyncTaskRequest, ImageModerationRequest

__all__ = ["ImsImageEngine", "data_id_for"]

log = logging.getLogger(__name__)

_DATA_ID = re.compile(r"^[A-Za-z0-9_\-@#]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-@#]")


def data_id_for(picture_id: str) -> str:
    """The picture's id as an IMS DataId (≤ 64 of letters, digits, ``_ - @ #``): itself when
    it fits, else its safe characters with a hash of the whole, so two ids never meet."""
    if _DATA_ID.match(picture_id):
        return picture_id
    digest = hashlib.sha256(picture_id.encode("utf-8")).hexdigest()[:16]
    return f"{_UNSAFE.sub('_', picture_id)[:47]}-{digest}"


class ImsImageEngine:
    """Judges pictures with IMS; it does not own ``client`` or ``inbox`` (their owner opens
    and closes them)."""

    name = verdicts.ENGINE_NAME
    version = verdicts.ENGINE_VERSION

    def __init__(
        self,
        client: ImsClient,
        settings: ImsEngineSettings | None = None,
        inbox: ImsCallbackInbox | None = None,
    ) -> None:
        self._client = client
        self.settings = settings or ImsEngineSettings()
        if self.settings.mode == "async" and inbox is None:
            raise ValueError("async IMS needs an ImsCallbackInbox for its callbacks")
        self._inbox = inbox
        self._urls: PictureUrls | None = inbox.pictures if inbox is not None else None
        self._slots = asyncio.Semaphore(self.settings.max_in_flight)
        self._submissions = itertools.count(1)
        self.judged = 0
        self.failures: Counter[str] = Counter()
        """Pictures not judged, by IMS error code (or "Timeout", "Encoding")."""

    @property
    def picture_urls(self) -> PictureUrls | None:
        """The pictures served for ``FileUrl`` (None: they go as ``FileContent``)."""
        return self._urls

    async def judge(
        self,
        pictures: Sequence[tuple[str, Picture | bytes]],
        *,
        biz_type: str | None = None,
        profile: str | None = None,
    ) -> list[Verdict]:
        """A verdict per picture, in order, under ``biz_type`` (the policy profile's
        ``image_biz_type``) or else the BizType the settings give ``profile``."""
        chosen = biz_type or self.settings.biz_type_for(profile)
        return list(await asyncio.gather(*(self._one(pid, pic, chosen) for pid, pic in pictures)))

    async def judge_jpeg(
        self,
        picture_id: str,
        jpeg: bytes,
        *,
        biz_type: str | None = None,
        profile: str | None = None,
    ) -> Verdict:
        """The verdict on one image file (JPEG, PNG … as IMS reads them)."""
        return await self._one(picture_id, jpeg, biz_type or self.settings.biz_type_for(profile))

    async def aclose(self) -> None:
        """Nothing of its own to release (the client and the inbox have their owner)."""

    async def _one(
        self, picture_id: str, picture: Picture | bytes, biz_type: str | None
    ) -> Verdict:
        async with self._slots:
            try:
                image = await self._jpeg(picture)
            except EngineError as exc:
                self.failures["Encoding"] += 1
                return verdicts.failed(picture_id, f"not sent to IMS: {exc}")
            file = self._file(picture, image)
            try:
                if self.settings.mode == "async":
                    verdict = await self._by_callback(picture_id, file, biz_type)
                else:
                    answer = await self._client.image_moderation(
                        ImageModerationRequest(
                            biz_type=biz_type,
                            data_id=data_id_for(picture_id),
                            file_content=file.get("file_content"),
                            file_url=file.get("file_url"),
                        )
                    )
                    verdict = verdicts.from_answer(picture_id, answer)
            except AmsError as exc:
                return self._failed(picture_id, exc)
            finally:
                if "file_url" in file and self._urls is not None:
                    self._urls.forget(file["name"])
            self.judged += 1
            return verdict

    def _file(self, picture: Picture | bytes, image: bytes) -> dict[str, str]:
        """How the picture travels: ``file_content`` (base64), or ``file_url`` (and the
        ``name`` it is kept under) when the engine serves pictures."""
        if self._urls is None:
            return {"file_content": base64.b64encode(image).decode("ascii")}
        kind = "application/octet-stream" if isinstance(picture, bytes) else "image/jpeg"
        name, url = self._urls.keep(image, kind)
        return {"file_url": url, "name": name}

    async def _jpeg(self, picture: Picture | bytes) -> bytes:
        if isinstance(picture, bytes):
            return picture
        return await asyncio.to_thread(encode_jpeg, picture, self.settings.jpeg_quality)

    async def _by_callback(
        self, picture_id: str, file: dict[str, str], biz_type: str | None
    ) -> Verdict:
        assert self._inbox is not None
        # IMS returns no TaskId: a DataId unique to this submission is the only link.
        data_id = f"{data_id_for(picture_id)[:50]}#{next(self._submissions)}"
        result = self._inbox.expect(data_id)
        try:
            await self._client.create_async_task(
                AsyncTaskRequest(
                    biz_type=biz_type,
                    data_id=data_id,
                    file_content=file.get("file_content"),
                    file_url=file.get("file_url"),
                    callback_url=self._inbox.url,
                )
            )
            async with asyncio.timeout(self.settings.callback_deadline):
                answer = await result
        except TimeoutError:
            self.failures["Timeout"] += 1
            return verdicts.failed(
                picture_id,
                f"IMS did not call back within {self.settings.callback_deadline:g} s",
            )
        except AmsError:
            raise  # the caller's: a refused submission
        except EngineError as exc:  # the inbox closed while this picture waited
            self.failures["Closed"] += 1
            return verdicts.failed(picture_id, f"no IMS answer: {exc}")
        finally:
            self._inbox.forget(data_id)
        return verdicts.from_answer(picture_id, answer)

    def _failed(self, picture_id: str, exc: AmsError) -> Verdict:
        self.failures[exc.code] += 1
        if bad_image(exc):
            reason = f"IMS cannot judge this picture: {exc.code}"
        elif operator_problem(exc):
            log.error("IMS refused the account: %s (RequestId %s)", exc.code, exc.request_id)
            reason = f"IMS refused the account: {exc.code}"
        else:
            log.warning("IMS could not judge %s: %s", picture_id, exc)
            reason = f"IMS call failed: {exc.code}"
        return verdicts.failed(picture_id, reason)
