"""LocalEngine: the embedded, offline engine (speech gate → whisper → keyword libraries).

Segments are judged on a small pool of worker threads (``workers``), never on the event
loop. At most ``backlog`` segments wait for a worker; a segment arriving when the backlog is
full is not dropped: it gets a ``skipped_overloaded`` verdict ("skipped: overloaded"), the
``skipped_overloaded`` counter goes up and a health event is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.segment import Segment
from streamguard.core.verdict import KeywordHit, Outcome, Suggestion, Verdict
from streamguard.engines.gate import SpeechDetector, SpeechGate, SpeechRegion
from streamguard.engines.local import recheck
from streamguard.engines.local.keywords import KeywordMatch, LibrarySet
from streamguard.engines.local.recognizer import Recognizer, Transcript

__all__ = [
    "ALWAYS_UNSUPPORTED",
    "UNINTELLIGIBLE",
    "EngineCounters",
    "HealthEvent",
    "HealthKind",
    "LocalEngine",
]

log = logging.getLogger(__name__)

ALWAYS_UNSUPPORTED = ("moaning", "screams")
"""Non-speech vocal sounds: the engine hears words only, so it never vouches for these."""
UNINTELLIGIBLE = "possible non-English or unintelligible speech"
"""Reported when an English-only model was unsure of what it heard."""


class HealthKind(StrEnum):
    OVERLOADED = "overloaded"
    """A segment was skipped because the backlog was full."""
    GATE_FAILED = "gate_failed"
    """The speech gate raised; the segment was recognised whole (fail open)."""
    RECOGNITION_FAILED = "recognition_failed"
    """A segment could not be judged; its verdict is ``failed``."""
    LIBRARY_RELOAD_FAILED = "library_reload_failed"
    """A changed library file is broken; the previous version stays in use."""


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """Something an operator should see (the daemon forwards these to health and metrics)."""

    kind: HealthKind
    message: str
    segment_id: str | None = None


@dataclass(frozen=True, slots=True)
class EngineCounters:
    """A snapshot of what the engine has done since it started."""

    segments: int
    moderated: int
    no_speech: int
    skipped_overloaded: int
    failed: int
    gate_failures: int
    hits: int
    backlog_depth: int
    """Segments admitted and waiting now (for the gate, or for recognition after it)."""
    backlog_limit: int
    running: int
    """Segments whose work is on a worker thread now (a shared whisper pass counts each)."""
    audio_seconds: float
    """Audio of every segment that reached a worker."""
    speech_seconds: float
    recognised_seconds: float
    """Audio actually handed to speech recognition (speech regions only)."""
    rechecked_seconds: float
    """Audio heard a second time by the second listen (near misses, with context)."""
    no_speech_seconds_saved: float
    """Audio of segments without speech: never recognised (nor billed, on the AMS path)."""
    busy_seconds: float
    """Wall-clock seconds workers spent judging (gate, recognition, matching)."""
    library_reloads: int
    library_reload_failures: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready counters, seconds rounded to milliseconds."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class _Gated:
    """What the gate stage found: speech regions (None = no speech) and its notes."""

    regions: tuple[SpeechRegion, ...] | None
    speech_seconds: float
    details: dict[str, Any]
    events: list[HealthEvent]
    seconds: float


@dataclass(frozen=True, slots=True, eq=False)
class _Job:
    """A gated segment waiting for recognition, and where its transcript will arrive."""

    segment: Segment
    regions: tuple[SpeechRegion, ...]
    speech: float
    transcript: asyncio.Future[_Heard]


@dataclass(frozen=True, slots=True)
class _Heard:
    """A segment's transcript (corrected by the second listen) and what the listen did."""

    transcript: Transcript
    plain_text: str
    rechecked_seconds: float
    corrections: tuple[recheck.Correction, ...]
    recheck_error: str | None = None
    """Why the second listen failed (the plain transcript stands)."""


@dataclass(slots=True)
class _Judgement:
    verdict: Verdict
    audio_seconds: float
    speech_seconds: float
    recognised_seconds: float
    busy_seconds: float
    events: list[HealthEvent]
    rechecked_seconds: float = 0.0


class LocalEngine:
    """The embedded engine; use ``async with LocalEngine(config) as engine`` (or ``aclose()``).

    ``recognizer`` and ``gate`` may be given (a test shares one loaded model, or controls the
    gate); a given recognizer is not the engine's to close. ``on_health`` is called on the
    event loop with every ``HealthEvent``.
    """

    name = "local"
    needs_clip = False  # judges the samples; clips are made for evidence only
    segments_in_flight = 1  # CPU-bound here: more at once would only fill the backlog

    def __init__(
        self,
        config: LocalEngineConfig | None = None,
        *,
        recognizer: Recognizer | None = None,
        gate: SpeechDetector | None = None,
        on_health: Callable[[HealthEvent], None] | None = None,
    ) -> None:
        self.config = config = config or LocalEngineConfig()
        self.libraries = LibrarySet(config.libraries)
        self.recognizer = recognizer or Recognizer(
            config.model,
            cpu_threads=config.cpu_threads,
            workers=config.workers,
            compute_type=config.compute_type,
            beam_size=config.beam_size,
            no_speech_threshold=config.no_speech_threshold,
            logprob_threshold=config.logprob_threshold,
            compression_ratio_threshold=config.compression_ratio_threshold,
            fillers=config.fillers,
        )
        self.gate: SpeechDetector = gate or SpeechGate(
            threshold=config.speech_threshold,
            energy_floor_dbfs=config.energy_floor_dbfs,
            min_speech=config.min_speech_seconds,
            min_silence=config.min_silence_seconds,
            pad=config.speech_pad_seconds,
            stride=config.gate_stride,
            model=config.gate_model,
        )
        self.version = f"streamguard {metadata.version('streamguard')}; {self.recognizer.version}"
        self._on_health = on_health
        self._executor = ThreadPoolExecutor(config.workers, thread_name_prefix="engine.local")
        self._slots = asyncio.Semaphore(config.workers)
        self._batch_ended = asyncio.Event()
        """Set (and replaced) whenever a recognition batch ends, done or put back in line."""
        self._reload_lock = threading.Lock()
        self._next_reload_check = time.monotonic() + config.reload_seconds
        self._closed = False
        self._admitted = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = 0
        self._ready: deque[_Job] = deque()
        self._counts: dict[str, int] = dict.fromkeys(
            ("segments", "moderated", "no_speech", "skipped", "failed", "gate_failures", "hits"), 0
        )
        self._seconds: dict[str, float] = dict.fromkeys(
            ("audio", "speech", "recognised", "rechecked", "no_speech", "busy"), 0.0
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Load the speech model now (off the loop), so a bad model fails at start-up."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.recognizer.load)

    async def aclose(self) -> None:
        """Refuse new segments, let every segment already admitted finish, stop the workers."""
        self._closed = True
        await self._idle.wait()
        await asyncio.to_thread(self._executor.shutdown, True)

    @property
    def counters(self) -> EngineCounters:
        """What the engine has done so far, and its backlog now."""
        return EngineCounters(
            segments=self._counts["segments"],
            moderated=self._counts["moderated"],
            no_speech=self._counts["no_speech"],
            skipped_overloaded=self._counts["skipped"],
            failed=self._counts["failed"],
            gate_failures=self._counts["gate_failures"],
            hits=self._counts["hits"],
            backlog_depth=self._backlog_depth,
            backlog_limit=self.config.backlog,
            running=self._running,
            audio_seconds=self._seconds["audio"],
            speech_seconds=self._seconds["speech"],
            recognised_seconds=self._seconds["recognised"],
            rechecked_seconds=self._seconds["rechecked"],
            no_speech_seconds_saved=self._seconds["no_speech"],
            busy_seconds=self._seconds["busy"],
            library_reloads=self.libraries.reloads,
            library_reload_failures=self.libraries.reload_failures,
        )

    def _verdict(self, segment: Segment, outcome: Outcome, reason: str, **fields: Any) -> Verdict:
        return Verdict(
            segment_id=segment.id,
            outcome=outcome,
            engine=self.name,
            engine_version=self.version,
            reason=reason,
            **fields,
        )

    def _raise(self, event: HealthEvent) -> None:
        log.warning("local engine: %s: %s", event.kind, event.message)
        if self._on_health is not None:
            self._on_health(event)

    @property
    def _backlog_depth(self) -> int:
        return self._admitted - self._running

    @contextlib.asynccontextmanager
    async def _busy(self, segments: int) -> AsyncIterator[None]:
        """Count ``segments`` as running (not waiting) while their work is on a thread."""
        self._running += segments
        try:
            yield
        finally:
            self._running -= segments

    async def moderate(
        self, segment: Segment, clip: Path | None, *, biz_type: str | None = None
    ) -> Verdict:
        """Judge ``segment`` (its samples; ``clip`` and ``biz_type`` are not needed).

        Never raises for a segment.
        """
        self._counts["segments"] += 1
        if self._closed:
            self._counts["failed"] += 1
            return self._verdict(segment, Outcome.FAILED, "failed: engine closed")
        depth = self._backlog_depth
        if depth >= self.config.backlog:
            self._counts["skipped"] += 1
            self._raise(
                HealthEvent(
                    HealthKind.OVERLOADED,
                    f"backlog full ({depth} waiting, {self._running} running); "
                    f"segment {segment.id} skipped",
                    segment.id,
                )
            )
            return self._verdict(
                segment,
                Outcome.SKIPPED_OVERLOADED,
                "skipped: overloaded",
                details={"backlog_depth": depth, "backlog_limit": self.config.backlog},
            )
        self._admitted += 1
        self._idle.clear()
        try:
            judgement = await self._judge(segment)
        except Exception as exc:
            # The Engine contract: a segment that could not be judged is recorded, not raised.
            self._counts["failed"] += 1
            reason = f"failed: {type(exc).__name__}: {exc}"
            self._raise(HealthEvent(HealthKind.RECOGNITION_FAILED, reason, segment.id))
            return self._verdict(segment, Outcome.FAILED, reason)
        finally:
            self._admitted -= 1
            if not self._admitted:
                self._idle.set()
        self._account(judgement)
        return judgement.verdict

    async def _judge(self, segment: Segment) -> _Judgement:
        loop = asyncio.get_running_loop()
        async with self._slots, self._busy(1):
            gated = await loop.run_in_executor(self._executor, self._gate, segment)
        if gated.regions is None:
            verdict = self._verdict(
                segment,
                Outcome.NO_SPEECH,
                "no speech",
                unsupported=ALWAYS_UNSUPPORTED,
                details=gated.details,
            )
            return _Judgement(verdict, segment.duration, 0.0, 0.0, gated.seconds, gated.events)
        job = _Job(
            segment, gated.regions, sum(r.duration for r in gated.regions), loop.create_future()
        )
        self._ready.append(job)
        try:
            while not job.transcript.done():
                if job not in self._ready:
                    # In a batch another call is recognising: wait for that batch to end (it
                    # goes back in line if that call is cancelled).
                    await self._batch_ended.wait()
                    continue
                async with self._slots:
                    if job in self._ready:
                        await self._recognise(self._take_batch())
            heard = job.transcript.result()
        finally:
            if job in self._ready:
                self._ready.remove(job)
        return self._assess(segment, gated, heard)

    def _take_batch(self) -> list[_Job]:
        """The oldest ready segment, and the next ones while their speech fits one window."""
        batch = [self._ready.popleft()]
        total = batch[0].speech
        while self._ready and total + self._ready[0].speech <= self.config.window_seconds:
            total += self._ready[0].speech
            batch.append(self._ready.popleft())
        return batch

    async def _recognise(self, batch: list[_Job]) -> None:
        """Recognise a batch on a worker thread and hand each segment its transcript."""
        try:
            await self._recognise_batch(batch)
        finally:
            # Whatever became of the batch, segments waiting on it look again.
            ended, self._batch_ended = self._batch_ended, asyncio.Event()
            ended.set()

    async def _recognise_batch(self, batch: list[_Job]) -> None:
        items = [(job.segment.samples, job.regions) for job in batch]
        try:
            async with self._busy(len(batch)):
                transcripts = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.recognizer.transcribe_many, items
                )
                heard = await self._recheck(batch, transcripts)
        except asyncio.CancelledError:
            # Whoever ran the batch was cancelled: the other segments in it go back in line.
            self._ready.extendleft(reversed([j for j in batch if not j.transcript.done()]))
            raise
        except Exception as exc:
            for job in batch:
                job.transcript.set_exception(exc)
            return
        for job, result in zip(batch, heard, strict=True):
            job.transcript.set_result(result)

    async def _recheck(self, batch: list[_Job], transcripts: list[Transcript]) -> list[_Heard]:
        """The second listen: re-hear uncertain stretches with keyword hotwords, in one pass.

        The uncertain stretches of every segment in the batch share one biased pass (as
        their speech shared the plain one), and each segment keeps only confirmed keywords.
        """
        config = self.config
        matcher = self.libraries.matcher
        found = [
            recheck.suspects(t, matcher, config.recheck_word_probability) if config.recheck else []
            for t in transcripts
        ]
        spans = [
            recheck.spans(suspects, job.regions, config.recheck_context_seconds)
            for job, suspects in zip(batch, found, strict=True)
        ]
        chosen = [n for n, stretch in enumerate(spans) if stretch]
        heard = [_Heard(t, t.text, 0.0, ()) for t in transcripts]
        if not chosen:
            return heard
        # Only the keywords heard nearly: a short prompt biases whisper less elsewhere.
        hotwords = ", ".join(sorted({s.keyword for n in chosen for s in found[n]}))
        items = [(batch[n].segment.samples, spans[n]) for n in chosen]
        try:
            biased = await asyncio.get_running_loop().run_in_executor(
                self._executor,
                functools.partial(self.recognizer.transcribe_many, items, hotwords=hotwords),
            )
        except Exception as exc:
            # The plain pass has judged these segments; a failed extra look must not undo it.
            error = f"{type(exc).__name__}: {exc}"
            log.warning("local engine: second listen failed, plain transcripts stand: %s", error)
            return [
                dataclasses.replace(h, recheck_error=error) if n in chosen else h
                for n, h in enumerate(heard)
            ]
        for n, again in zip(chosen, biased, strict=True):
            merged, corrections = recheck.merge(
                transcripts[n], again, matcher, found[n], confirm=config.recheck_confirm_probability
            )
            # The biased pass's time is charged to the segment even when nothing changed.
            if not corrections:
                merged = dataclasses.replace(merged, seconds=merged.seconds + again.seconds)
            heard[n] = _Heard(merged, transcripts[n].text, again.audio_seconds, tuple(corrections))
        return heard

    def _account(self, judgement: _Judgement) -> None:
        verdict = judgement.verdict
        if verdict.outcome is Outcome.NO_SPEECH:
            self._counts["no_speech"] += 1
            self._seconds["no_speech"] += judgement.audio_seconds
        else:
            self._counts["moderated"] += 1
        self._counts["hits"] += int(verdict.hit)
        self._counts["gate_failures"] += int("gate_error" in verdict.details)
        self._seconds["audio"] += judgement.audio_seconds
        self._seconds["speech"] += judgement.speech_seconds
        self._seconds["recognised"] += judgement.recognised_seconds
        self._seconds["rechecked"] += judgement.rechecked_seconds
        self._seconds["busy"] += judgement.busy_seconds
        for event in judgement.events:
            self._raise(event)

    def _refresh_libraries(self) -> list[HealthEvent]:
        now = time.monotonic()
        with self._reload_lock:
            if now < self._next_reload_check:
                return []
            self._next_reload_check = now + self.config.reload_seconds
            failures_before = self.libraries.reload_failures
            self.libraries.refresh()
            if self.libraries.reload_failures == failures_before:
                return []
            return [
                HealthEvent(HealthKind.LIBRARY_RELOAD_FAILED, str(error).replace("\n", "; "))
                for error in self.libraries.errors.values()
            ]

    def _gate(self, segment: Segment) -> _Gated:
        """Runs on a worker thread: reload changed libraries, then find the speech."""
        started = time.perf_counter()
        events = self._refresh_libraries()
        details: dict[str, Any] = {}
        try:
            report = self.gate.detect(segment.samples)
        except Exception as exc:
            # Fail open: a broken gate must not let a segment through unjudged.
            details["gate_error"] = f"{type(exc).__name__}: {exc}"
            events.append(
                HealthEvent(
                    HealthKind.GATE_FAILED,
                    f"speech gate failed ({details['gate_error']}); segment moderated whole",
                    segment.id,
                )
            )
            whole = (SpeechRegion(0.0, segment.duration),)
            return _Gated(whole, segment.duration, details, events, time.perf_counter() - started)
        details["gate"] = report.to_json()
        regions = report.regions if report.has_speech else None
        seconds = time.perf_counter() - started
        return _Gated(regions, report.speech_seconds, details, events, seconds)

    def _assess(self, segment: Segment, gated: _Gated, heard: _Heard) -> _Judgement:
        """The verdict on a recognised segment: keyword hits and what could not be judged."""
        transcript = heard.transcript
        details = dict(gated.details)
        details["transcript"] = transcript.to_json()
        if heard.recheck_error is not None:
            details["recheck"] = {"error": heard.recheck_error, "plain_text": heard.plain_text}
        if heard.rechecked_seconds:
            details["recheck"] = {
                "rechecked_seconds": round(heard.rechecked_seconds, 3),
                "plain_text": heard.plain_text,
                "corrections": [c.to_json() for c in heard.corrections],
            }
        matcher = self.libraries.matcher
        if self.libraries.errors:
            details["library_errors"] = [str(e) for e in self.libraries.errors.values()]
        matches = matcher.match(transcript.text)
        hits = tuple(self._hit(m, transcript) for m in matches)
        unsupported = (*ALWAYS_UNSUPPORTED, *self._unsupported(transcript, gated.speech_seconds))
        fields: dict[str, Any] = {"text": transcript.text, "unsupported": unsupported}
        if hits:
            top = max(hits, key=lambda h: h.score)
            block = any(m.library.score >= m.library.block_score for m in matches)
            fields |= {
                "suggestion": Suggestion.BLOCK if block else Suggestion.REVIEW,
                "label": top.label,
                "sub_label": top.sub_label,
                "score": top.score,
                "hit": True,
                "keywords": hits,
            }
        busy = gated.seconds + transcript.seconds
        details["seconds"] = round(busy, 3)
        verdict = self._verdict(
            segment,
            Outcome.MODERATED,
            "keyword hit" if hits else "no keyword heard",
            details=details,
            **fields,
        )
        return _Judgement(
            verdict,
            segment.duration,
            gated.speech_seconds,
            transcript.audio_seconds,
            busy,
            gated.events,
            heard.rechecked_seconds,
        )

    @staticmethod
    def _hit(match: KeywordMatch, transcript: Transcript) -> KeywordHit:
        words = [
            w for w in transcript.words if w.text_end > match.start and w.text_start < match.end
        ]
        return KeywordHit(
            keyword=match.keyword,
            library_id=match.library.id,
            library_name=match.library.name,
            label=match.library.label,
            sub_label=match.library.sub_label,
            score=match.library.score,
            text_start=match.start,
            text_end=match.end,
            time_start=words[0].start if words else None,
            time_end=words[-1].end if words else None,
            heard=transcript.text[match.start : match.end],
        )

    def _unsupported(self, transcript: Transcript, speech_seconds: float) -> list[str]:
        """What this transcript cannot vouch for: other languages, or audio it did not follow."""
        config = self.config
        if self.recognizer.multilingual:
            if transcript.text and transcript.language != config.language:
                if config.language == "en":
                    return [f"non-English speech ({transcript.language})"]
                return [f"speech not in {config.language} ({transcript.language})"]
            return [] if transcript.text or speech_seconds < 1.0 else [UNINTELLIGIBLE]
        unsure = (
            (
                transcript.avg_logprob is not None
                and transcript.avg_logprob < config.logprob_threshold
            )
            or (
                transcript.compression_ratio is not None
                and transcript.compression_ratio > config.compression_ratio_threshold
            )
            or (
                transcript.word_probability is not None
                and transcript.word_probability < config.word_probability_threshold
            )
        )
        # Speech the gate is sure of but whisper made nothing of is not "clean" either.
        silent_transcript = not transcript.text and speech_seconds >= 1.0
        return [UNINTELLIGIBLE] if unsure or silent_transcript else []
