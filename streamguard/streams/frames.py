"""One stream's frames, judged beside its audio: source frames → image engine → on_result.

Frames come from :meth:`Source.frames <streamguard.ingest.source.Source.frames>` (a few a
minute: the sampler already dropped keyframes inside the interval and near-duplicates).
Each is judged alone, in order; the picture of a frame that is not a plain Pass is written
as a JPEG into ``clip_dir`` (its evidence, taken over by the moderation path) before the
result is handed on. An engine that raises is a failed verdict for that frame, never a
stream that stops: the audio goes on being judged either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from streamguard.core.errors import StreamGuardError
from streamguard.core.frame import Frame
from streamguard.core.private import private_dir, write_private
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.pictures import encode_jpeg

__all__ = ["FrameJudge", "FrameResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FrameResult:
    """A frame, the verdict on it and its JPEG (written only when the verdict is not a Pass)."""

    frame: Frame
    verdict: Verdict
    jpeg: Path | None


class FrameJudge:
    """Judges one stream's frames with ``engine``, one at a time, handing each result on."""

    def __init__(
        self,
        *,
        stream_id: str,
        engine: ImageEngine,
        clip_dir: Path,
        on_result: Callable[[FrameResult], Awaitable[object]],
        biz_type: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._stream_id = stream_id
        self._engine = engine
        self._clip_dir = clip_dir
        self._on_result = on_result
        self._biz_type = biz_type
        self.judged = 0

    async def run(self, frames: AsyncIterable[Frame]) -> None:
        """Judge every frame until they end."""
        async for frame in frames:
            verdict = await self._verdict(frame)
            jpeg = None
            if verdict.hit or verdict.suggestion is not Suggestion.PASS:
                jpeg = await asyncio.to_thread(self._write_jpeg, frame)
            self.judged += 1
            await self._on_result(FrameResult(frame, verdict, jpeg))

    async def _verdict(self, frame: Frame) -> Verdict:
        try:
            [verdict] = await self._engine.judge(
                [(frame.id, frame.picture)], biz_type=self._biz_type()
            )
        except StreamGuardError as exc:
            log.warning("stream %s: frame %s not judged: %s", self._stream_id, frame.id, exc)
            return Verdict(
                segment_id=frame.id,
                outcome=Outcome.FAILED,
                engine=self._engine.name,
                engine_version=self._engine.version,
                reason=str(exc),
            )
        return verdict

    def _write_jpeg(self, frame: Frame) -> Path | None:
        path = private_dir(self._clip_dir) / f"{frame.id}.jpg"
        try:
            write_private(path, encode_jpeg(frame.picture))
        except OSError as exc:  # the alert still goes out, without its picture
            log.error("stream %s: frame %s not written: %s", self._stream_id, frame.id, exc)
            return None
        return path
