"""The speech gate's stride: the ONNX model run on every other loud frame finds what it
finds judging every frame (real silero, real synthesised speech over noise and music)."""

from __future__ import annotations

import numpy as np
import pytest

from streamguard.core.chunk import SAMPLE_RATE
from streamguard.demo.samples import music, noise
from streamguard.engines.gate import FRAME_SAMPLES, GateModel, SpeechGate, SpeechReport
from tests.support.speech import CONDITIONS, SpeechCache, segment_of

TEXT = "Can everyone hear me okay? My microphone was acting up earlier today."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechCache:
    return SpeechCache(tmp_path_factory.mktemp("speech"))


def covered(report: SpeechReport, samples: int) -> np.ndarray:
    inside = np.zeros(samples, dtype=bool)
    for region in report.regions:
        inside[round(region.start * SAMPLE_RATE) : round(region.end * SAMPLE_RATE)] = True
    return inside


@pytest.mark.parametrize("condition", CONDITIONS)
def test_stride_two_judges_half_the_frames_and_finds_the_same_speech(
    speech: SpeechCache, condition: str
) -> None:
    spoken = speech(TEXT, "hibari")
    samples = segment_of(spoken, condition, lead=3.0, seconds=12.0).samples
    every = SpeechGate(stride=1).detect(samples)
    halved = SpeechGate(stride=2).detect(samples)
    loud_frames = round(every.model_seconds * SAMPLE_RATE / FRAME_SAMPLES)
    assert every.frames_judged == loud_frames
    assert halved.model_seconds == every.model_seconds
    assert halved.frames_judged <= loud_frames // 2 + len(halved.regions) + 2
    # The same regions, their edges within a quarter of a second (8 frames).
    assert len(halved.regions) == len(every.regions) > 0
    for mine, theirs in zip(halved.regions, every.regions, strict=True):
        assert mine.start == pytest.approx(theirs.start, abs=0.26)
        assert mine.end == pytest.approx(theirs.end, abs=0.26)
    a, b = covered(every, len(samples)), covered(halved, len(samples))
    assert float((a & b).sum()) >= 0.97 * float(a.sum())


@pytest.mark.parametrize("model", ["silero-onnx", "pysilero"])
def test_music_and_noise_alone_are_not_speech_at_the_default_stride(model: GateModel) -> None:
    gate = SpeechGate(model=model)
    assert gate.stride == 2
    for background in (music(12.0, 3), noise(12.0, 3)):
        samples = (np.clip(background * 10 ** (-24 / 20), -1, 1) * 32767).astype(np.int16)
        report = gate.detect(samples)
        # ``model_seconds`` is audio (of the 12 s clip, the part above the energy floor),
        # not time taken: nearly all of it is loud, so the model, not the floor, decides.
        loud_frames = round(report.model_seconds * SAMPLE_RATE / FRAME_SAMPLES)
        assert loud_frames > 10 * SAMPLE_RATE // FRAME_SAMPLES
        assert not report.has_speech


def test_a_stride_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="stride must be at least 1"):
        SpeechGate(stride=0)
