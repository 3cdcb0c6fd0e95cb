"""LocalEngine: the embedded, offline engine (speech gate → whisper → keyword libraries).

A thin composition of its parts:

- ``moderator``: a transcript's text → keyword hits and the semantic layer's finding,
  combined (``judge``), with the tail of the stream's previous segment (``context``);

- ``scheduler``: worker threads, the backlog (a segment arriving when it is full is not
  dropped: it gets a ``skipped_overloaded`` verdict, "skipped: overloaded"), and batches of
  segments sharing one whisper pass;
- ``listen``: the speech gate and recognition with its second listen, on those threads;
- ``assess``: what was heard → the verdict, pure;
- ``stats``: counters and health events, read from outside as ``LocalEngine.counters``
  and passed to ``on_health``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from types import TracebackType
from typing import Self

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.segment import Segment
from streamguard.core.verdict import Verdict
from streamguard.engines.gate import SpeechDetector, SpeechGate
from streamguard.engines.local import assess, listen
from streamguard.engines.local.context import StreamTails
from streamguard.engines.local.embedder import Embedder
from streamguard.engines.local.judge import Judgement
from streamguard.engines.local.keywords import LibrarySet
from streamguard.engines.local.listen import Gated, Heard
from streamguard.engines.local.moderator import TextModerator
from streamguard.engines.local.recognizer import Recognizer
from streamguard.engines.local.scheduler import Job, Scheduler
from streamguard.engines.local.stats import EngineCounters, EngineStats, HealthEvent, HealthKind

__all__ = ["LocalEngine"]


class LocalEngine:
    """The embedded engine; use ``async with LocalEngine(config) as engine`` (or ``aclose()``).

    ``recognizer``, ``multilingual``, ``gate`` and ``embedder`` may be given (a test shares
    one loaded model, controls the gate, or gives fixed sentence vectors); a given recognizer
    is not the engine's to close. ``multilingual`` (or ``engine.multilingual_model``) hears
    again what an English-only recognizer could not follow. ``text`` judges transcripts
    (keywords and the semantic layer), each with the tail of its stream's previous segment
    (``tails``). ``on_health`` is called on the event loop with every ``HealthEvent``;
    ``counters`` is a snapshot of what the engine has done (health events counted by kind
    among them).
    """

    name = assess.ENGINE
    segments_in_flight = 1  # CPU-bound here: more at once would only fill the backlog

    def __init__(
        self,
        config: LocalEngineConfig | None = None,
        *,
        recognizer: Recognizer | None = None,
        multilingual: Recognizer | None = None,
        gate: SpeechDetector | None = None,
        embedder: Embedder | None = None,
        on_health: Callable[[HealthEvent], None] | None = None,
    ) -> None:
        self.config = config = config or LocalEngineConfig()
        self.libraries = LibrarySet.of(config)
        self.text = TextModerator(config, libraries=self.libraries, embedder=embedder)
        self.tails = StreamTails(config.context_words)
        self.recognizer = recognizer or _recognizer(
            config, config.model, config.model_sha256, config.model_language
        )
        self.multilingual = multilingual
        """Hears again what an English-only ``recognizer`` could not follow (optional)."""
        if multilingual is None and config.multilingual_model is not None:
            self.multilingual = _recognizer(
                config, config.multilingual_model, config.multilingual_model_sha256
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
        if self.multilingual is not None:
            self.version += f"; other languages: {self.multilingual.version}"
        if self.text.embedder is not None:
            self.version += f"; {self.text.embedder.name}"
        self._stats = EngineStats(on_health)
        self._scheduler: Scheduler[Heard] = Scheduler(
            workers=config.workers,
            backlog=config.backlog,
            window_seconds=config.window_seconds,
            hear=self._hear,
            thread_name_prefix="engine.local",
        )
        self._reload_lock = threading.Lock()
        self._next_reload_check = time.monotonic() + config.reload_seconds

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
        """Load the speech model and fit the semantic layer now (off the loop), so a bad
        model fails at start-up."""
        await self._scheduler.offload(self.recognizer.load)
        if self.multilingual is not None:
            await self._scheduler.offload(self.multilingual.load)
        await self._scheduler.offload(self.text.load)

    async def aclose(self) -> None:
        """Refuse new segments, let every segment already admitted finish, stop the workers."""
        await self._scheduler.close()

    @property
    def counters(self) -> EngineCounters:
        """What the engine has done so far, and its backlog now."""
        return self._stats.snapshot(
            backlog_depth=self._scheduler.backlog_depth,
            backlog_limit=self._scheduler.backlog_limit,
            running=self._scheduler.running,
            library_reloads=self.libraries.reloads,
            library_reload_failures=self.libraries.reload_failures,
        )

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        """Judge ``segment`` (its samples; ``biz_type`` is not needed).

        Never raises for a segment.
        """
        self._stats.arrived()
        scheduler = self._scheduler
        if scheduler.closed:
            self._stats.failed()
            return assess.failed(segment, "failed: engine closed", version=self.version)
        if scheduler.full:
            depth, limit = scheduler.backlog_depth, scheduler.backlog_limit
            message = (
                f"backlog full ({depth} waiting, {scheduler.running} running); "
                f"segment {segment.id} skipped"
            )
            self._stats.skipped(HealthEvent(HealthKind.OVERLOADED, message, segment.id))
            return assess.skipped(segment, depth=depth, limit=limit, version=self.version)
        with scheduler.admitted():
            try:
                verdict, gated, heard = await self._judge(segment)
            except Exception as exc:
                # The Engine contract: a segment that could not be judged is recorded, not raised.
                reason = f"failed: {type(exc).__name__}: {exc}"
                self._stats.failed(HealthEvent(HealthKind.RECOGNITION_FAILED, reason, segment.id))
                return assess.failed(segment, reason, version=self.version)
        self._stats.judged(verdict, assess.usage(segment, gated, heard), gated.events)
        return verdict

    async def _judge(self, segment: Segment) -> tuple[Verdict, Gated, Heard | None]:
        """Gate, recognise and assess ``segment``; what was heard is None without speech."""
        gated = await self._scheduler.run(functools.partial(self._gate, segment))
        if gated.regions is None:
            return assess.no_speech(segment, gated, version=self.version), gated, None
        heard = await self._scheduler.recognise(segment, gated.regions)
        judgement = await self._scheduler.offload(
            functools.partial(self._read, segment, heard.transcript.text)
        )
        verdict = assess.assess(
            segment,
            gated,
            heard,
            judgement=judgement,
            library_errors=[
                *(str(e) for e in self.libraries.errors.values()),
                *(str(e) for e in self.text.errors),
            ],
            confidence=assess.Confidence.of(
                self.config, multilingual=heard.multilingual or self.recognizer.multilingual
            ),
            version=self.version,
        )
        return verdict, gated, heard

    def _read(self, segment: Segment, text: str) -> Judgement:
        """Runs on a worker thread: judge ``text`` with the tail of the segment before it."""
        judgement = self.text.judge_after(text, self.tails.before(segment))
        flagged = judgement.semantic.library.id if judgement.semantic is not None else None
        self.tails.remember(segment, text, flagged)
        return judgement

    async def _hear(self, batch: Sequence[Job[Heard]]) -> list[Heard]:
        """The scheduler's recognition of one batch: whisper, then the second listen, then
        the multilingual model for what an English-only model could not follow."""
        items = [(job.segment.samples, job.regions) for job in batch]
        heard = await listen.hear(
            items,
            recognizer=self.recognizer,
            libraries=self.libraries,
            config=self.config,
            offload=self._scheduler.offload,
        )
        if self.multilingual is None or self.recognizer.multilingual:
            return heard
        english = assess.Confidence.of(self.config, multilingual=False)
        unsure = [
            n
            for n, (job, h) in enumerate(zip(batch, heard, strict=True))
            if assess.UNINTELLIGIBLE
            in assess.doubts(h.transcript, sum(r.end - r.start for r in job.regions), english)
        ]
        return await listen.hear_in_any_language(
            items, heard, unsure, recognizer=self.multilingual, offload=self._scheduler.offload
        )

    def _gate(self, segment: Segment) -> Gated:
        """Runs on a worker thread: reload changed libraries, then find the speech."""
        started = time.perf_counter()
        events = self._refresh_libraries()
        return listen.find_speech(self.gate, segment, events, started)

    def _refresh_libraries(self) -> list[HealthEvent]:
        """Reload changed library files (at most every ``reload_seconds``); what broke."""
        now = time.monotonic()
        with self._reload_lock:
            if now < self._next_reload_check:
                return []
            self._next_reload_check = now + self.config.reload_seconds
            failures_before = self.libraries.reload_failures + self._example_failures
            self.libraries.refresh()
            self.text.refresh_examples()
            if self.libraries.reload_failures + self._example_failures == failures_before:
                return []
            return [
                HealthEvent(HealthKind.LIBRARY_RELOAD_FAILED, str(error).replace("\n", "; "))
                for error in (*self.libraries.errors.values(), *self.text.errors)
            ]

    @property
    def _example_failures(self) -> int:
        examples = self.text.examples
        return examples.reload_failures if examples is not None else 0


def _recognizer(
    config: LocalEngineConfig, model: str, sha256: str | None, language: str | None = None
) -> Recognizer:
    """A whisper ``model`` with the engine's recognition settings."""
    return Recognizer(
        model,
        cpu_threads=config.cpu_threads,
        workers=config.workers,
        compute_type=config.compute_type,
        beam_size=config.beam_size,
        no_speech_threshold=config.no_speech_threshold,
        logprob_threshold=config.logprob_threshold,
        compression_ratio_threshold=config.compression_ratio_threshold,
        fillers=config.fillers,
        sha256=sha256,
        language=language,
    )
