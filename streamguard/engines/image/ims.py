"""Tencent Cloud IMS as the image engine: each picture sent as a JPEG in ``FileContent`` to
the sync ``ImageModeration`` (frames are in memory: no URL to fetch, no download delay).

IMS's answer is taken as it is (``shared/spec/ims-2020-12-29.md``, section 6): the top-level
``Suggestion`` decides whether it is a hit, ``Label`` is the highest-priority label with its
``Score``, every ``LabelResults`` entry goes into ``details["scores"]``, and any array may be
null or missing. A call that fails (after the client's bounded retries) is a ``failed``
verdict with the IMS error code, never an exception; the picture is not judged twice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from streamguard.core.errors import AmsError
from streamguard.core.frame import Picture
from streamguard.core.segment import DATA_ID_PATTERN
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.engines.image.pictures import encode_jpeg
from streamguard.tencentcloud.ims import ImsClient

__all__ = ["ImsImageEngine", "verdict_from_ims"]

log = logging.getLogger(__name__)


def verdict_from_ims(picture_id: str, answer: dict[str, Any], version: str) -> Verdict:
    """An ImageModeration answer as our verdict on the picture."""
    try:
        suggestion = Suggestion(str(answer.get("Suggestion", "Review")))
    except ValueError:  # an unknown suggestion is not a Pass
        suggestion = Suggestion.REVIEW
    label = str(answer.get("Label") or "Normal")
    scores = {
        str(item.get("Label") or item.get("Scene")): int(item.get("Score") or 0)
        for item in answer.get("LabelResults") or []
        if isinstance(item, dict)
    }
    return Verdict(
        segment_id=picture_id,
        outcome=Outcome.MODERATED,
        engine=ImsImageEngine.name,
        engine_version=version,
        suggestion=suggestion,
        label=label,
        sub_label=str(answer.get("SubLabel") or ""),
        score=int(answer.get("Score") or 0),
        hit=suggestion is not Suggestion.PASS or label != "Normal",
        task_id=str(answer.get("RequestId") or "") or None,
        details={"scores": scores, "biz_type": answer.get("BizType") or None},
    )


class ImsImageEngine:
    """Judges pictures with IMS ImageModeration; ``async with`` opens and closes its client."""

    name = "ims"
    version = "ims 2020-12-29"

    def __init__(self, client: ImsClient, *, biz_type: str | None = None) -> None:
        self._client = client
        self._biz_type = biz_type
        self.calls = 0

    async def judge(
        self, pictures: Sequence[tuple[str, Picture]], *, biz_type: str | None = None
    ) -> list[Verdict]:
        """A verdict per picture, in order; the calls run side by side (the client's rate
        limit paces them). ``biz_type`` (the profile's) wins over the engine's own."""
        chosen = biz_type or self._biz_type
        return list(await asyncio.gather(*(self._one(pid, pic, chosen) for pid, pic in pictures)))

    async def _one(self, picture_id: str, picture: Picture, biz_type: str | None) -> Verdict:
        jpeg = await asyncio.to_thread(encode_jpeg, picture)
        params: dict[str, Any] = {"FileContent": base64.b64encode(jpeg).decode("ascii")}
        if DATA_ID_PATTERN.match(picture_id):
            params["DataId"] = picture_id
        if biz_type:
            params["BizType"] = biz_type
        self.calls += 1
        try:
            answer = await self._client.image_moderation(params)
        except AmsError as exc:
            log.warning("IMS could not judge %s: %s", picture_id, exc)
            return Verdict(
                segment_id=picture_id,
                outcome=Outcome.FAILED,
                engine=self.name,
                engine_version=self.version,
                reason=f"IMS: {exc}",
            )
        return verdict_from_ims(picture_id, answer, self.version)

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's HTTP session."""
        await self._client.aclose()
