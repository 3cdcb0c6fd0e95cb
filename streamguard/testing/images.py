"""A deterministic image engine fake at our own seam (``engines.image.base.ImageEngine``).

The real offline model cannot be made to score a drawn picture high (see
``tests/engines/image``), so the path of an image hit is driven by this fake: a picture
whose pixels are mostly (near) the marker colour (magenta, 255/0/255) is a ``Porn`` hit with
score 95 (Block); anything else passes. It says what it does not judge, as real engines do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamguard.core.frame import Picture
from streamguard.core.verdict import Outcome, Suggestion, Verdict

__all__ = ["HIT_SCORE", "MARKER", "MarkerImageEngine", "marked"]

MARKER = (255, 0, 255)
HIT_SCORE = 95


def marked(height: int = 120, width: int = 160) -> Picture:
    """A picture the fake flags."""
    picture = np.zeros((height, width, 3), np.uint8)
    picture[:] = MARKER
    return picture


class MarkerImageEngine:
    """Block a mostly-magenta picture as ``label`` (Porn) 95; Pass anything else."""

    name = "marker-fake"
    version = "1"

    def __init__(self, label: str = "Porn") -> None:
        self.label = label
        self.judged: list[str] = []
        self.biz_types: list[str | None] = []
        """The BizType each call was asked to judge under."""

    async def judge(
        self, pictures: Sequence[tuple[str, Picture]], *, biz_type: str | None = None
    ) -> list[Verdict]:
        self.biz_types.append(biz_type)
        return [self._one(picture_id, picture) for picture_id, picture in pictures]

    def _one(self, picture_id: str, picture: Picture) -> Verdict:
        self.judged.append(picture_id)
        # Near the colour, not exactly: a frame went through a video codec on its way.
        near = np.abs(picture.astype(np.int16) - np.array(MARKER, np.int16)) < 48
        share = float(np.all(near, axis=-1).mean())
        hit = share > 0.5
        return Verdict(
            segment_id=picture_id,
            outcome=Outcome.MODERATED,
            engine=self.name,
            engine_version=self.version,
            suggestion=Suggestion.BLOCK if hit else Suggestion.PASS,
            label=self.label if hit else "Normal",
            score=HIT_SCORE if hit else 0,
            hit=hit,
            unsupported=("violence",),
            details={"scores": {self.label: HIT_SCORE if hit else 0}},
        )

    async def aclose(self) -> None:
        """Nothing to release."""
