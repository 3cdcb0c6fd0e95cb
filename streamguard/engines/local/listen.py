"""The local engine's two listening stages: find the speech, then hear it.

``find_speech`` runs the speech gate on a worker thread and fails open: if the gate raises,
the whole segment is speech. ``hear`` recognises a batch of segments' speech in one whisper
pass, then gives the near misses of all of them a second, keyword-biased listen in one more
pass (``recheck``); its blocking work goes to the workers through ``offload``. What the
stages found (``Gated``, ``Heard``) is what ``assess`` judges.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.chunk import Pcm
from streamguard.core.segment import Segment
from streamguard.engines.gate import SpeechDetector, SpeechRegion
from streamguard.engines.local import recheck
from streamguard.engines.local.keywords import LibrarySet
from streamguard.engines.local.recognizer import Recognizer, Transcript
from streamguard.engines.local.stats import HealthEvent, HealthKind

__all__ = ["Gated", "Heard", "Offload", "find_speech", "hear", "hear_in_any_language"]

log = logging.getLogger("streamguard.engines.local.engine")
"""The engine's logger: what its parts report is the engine's to say, under one name."""

R = TypeVar("R")


class Offload(Protocol):
    """Puts blocking work on the engine's worker threads (``Scheduler.offload``)."""

    def __call__(self, work: Callable[[], R], /) -> Awaitable[R]: ...


@dataclass(frozen=True, slots=True)
class Gated:
    """What the gate stage found: speech regions (None = no speech) and its notes."""

    regions: tuple[SpeechRegion, ...] | None
    speech_seconds: float
    details: dict[str, Any]
    """For the verdict: the gate's report, or why it failed."""
    events: tuple[HealthEvent, ...]
    seconds: float
    """Wall-clock seconds the stage took."""


@dataclass(frozen=True, slots=True)
class Heard:
    """A segment's transcript (corrected by the second listen) and what the listen did."""

    transcript: Transcript
    plain_text: str
    rechecked_seconds: float = 0.0
    corrections: tuple[recheck.Correction, ...] = ()
    recheck_error: str | None = None
    """Why the second listen failed (the plain transcript stands)."""
    multilingual: bool = False
    """Heard by the multilingual model (``hear_in_any_language``), which detects languages."""


def find_speech(
    gate: SpeechDetector, segment: Segment, events: Sequence[HealthEvent], started: float
) -> Gated:
    """Run ``gate`` over ``segment`` (blocking: call it on a worker thread).

    ``events`` were met earlier in the stage, which began at ``started`` (a
    ``time.perf_counter()`` reading).
    """
    details: dict[str, Any] = {}
    try:
        report = gate.detect(segment.samples)
    except Exception as exc:
        # Fail open: a broken gate must not let a segment through unjudged.
        details["gate_error"] = f"{type(exc).__name__}: {exc}"
        failed = HealthEvent(
            HealthKind.GATE_FAILED,
            f"speech gate failed ({details['gate_error']}); segment moderated whole",
            segment.id,
        )
        whole = (SpeechRegion(0.0, segment.duration),)
        seconds = time.perf_counter() - started
        return Gated(whole, segment.duration, details, (*events, failed), seconds)
    details["gate"] = report.to_json()
    regions = report.regions if report.has_speech else None
    seconds = time.perf_counter() - started
    return Gated(regions, report.speech_seconds, details, tuple(events), seconds)


async def hear(
    items: Sequence[tuple[Pcm, tuple[SpeechRegion, ...]]],
    *,
    recognizer: Recognizer,
    libraries: LibrarySet,
    config: LocalEngineConfig,
    offload: Offload,
) -> list[Heard]:
    """Recognise the speech ``regions`` of each segment's samples in one pass, then listen
    again to near misses; one ``Heard`` per item, in order."""
    # engine.hotwords: the first pass hears with the marked libraries' words as hotwords.
    hotwords = libraries.matcher.hotwords if config.hotwords else ""
    transcripts = await offload(
        functools.partial(recognizer.transcribe_many, items, hotwords=hotwords or None)
    )
    return await _second_listen(
        items,
        transcripts,
        recognizer=recognizer,
        libraries=libraries,
        config=config,
        offload=offload,
    )


async def _second_listen(
    items: Sequence[tuple[Pcm, tuple[SpeechRegion, ...]]],
    transcripts: list[Transcript],
    *,
    recognizer: Recognizer,
    libraries: LibrarySet,
    config: LocalEngineConfig,
    offload: Offload,
) -> list[Heard]:
    """Re-hear uncertain stretches with keyword hotwords, in one pass.

    The uncertain stretches of every segment in the batch share one biased pass (as their
    speech shared the plain one), and each segment keeps only confirmed keywords.
    """
    # Read after the plain pass, so a reload during that pass is already used here.
    matcher = libraries.matcher
    found = [
        recheck.suspects(t, matcher, config.recheck_word_probability) if config.recheck else []
        for t in transcripts
    ]
    spans = [
        recheck.spans(suspects, regions, config.recheck_context_seconds)
        for (_, regions), suspects in zip(items, found, strict=True)
    ]
    chosen = [n for n, stretch in enumerate(spans) if stretch]
    heard = [Heard(t, t.text) for t in transcripts]
    if not chosen:
        return heard
    # Only the keywords heard nearly: a short prompt biases whisper less elsewhere.
    hotwords = ", ".join(sorted({s.keyword for n in chosen for s in found[n]}))
    again = [(items[n][0], spans[n]) for n in chosen]
    try:
        biased = await offload(
            functools.partial(recognizer.transcribe_many, again, hotwords=hotwords)
        )
    except Exception as exc:
        # The plain pass has judged these segments; a failed extra look must not undo it.
        error = f"{type(exc).__name__}: {exc}"
        log.warning("local engine: second listen failed, plain transcripts stand: %s", error)
        return [
            dataclasses.replace(h, recheck_error=error) if n in chosen else h
            for n, h in enumerate(heard)
        ]
    for n, rehearing in zip(chosen, biased, strict=True):
        merged, corrections = recheck.merge(
            transcripts[n], rehearing, matcher, found[n], confirm=config.recheck_confirm_probability
        )
        # The biased pass's time is charged to the segment even when nothing changed.
        if not corrections:
            merged = dataclasses.replace(merged, seconds=merged.seconds + rehearing.seconds)
        heard[n] = Heard(merged, transcripts[n].text, rehearing.audio_seconds, tuple(corrections))
    return heard


async def hear_in_any_language(
    items: Sequence[tuple[Pcm, tuple[SpeechRegion, ...]]],
    heard: Sequence[Heard],
    unsure: Sequence[int],
    *,
    recognizer: Recognizer,
    offload: Offload,
) -> list[Heard]:
    """``heard``, with the items at ``unsure`` heard again by a multilingual ``recognizer``.

    The English model could not follow those (possibly another language): the multilingual
    model detects the language and transcribes it, in one pass for all of them. If it
    fails, the English transcripts stand (and stay reported as not followed).
    """
    result = list(heard)
    if not unsure:
        return result
    again = [items[n] for n in unsure]
    try:
        transcripts = await offload(functools.partial(recognizer.transcribe_many, again))
    except Exception as exc:
        log.warning(
            "local engine: multilingual model failed, English transcripts stand: %s: %s",
            type(exc).__name__,
            exc,
        )
        return result
    for n, transcript in zip(unsure, transcripts, strict=True):
        result[n] = Heard(transcript, transcript.text, multilingual=True)
    return result
