"""A second, keyword-biased listen to words that sound like a keyword, accepted only when confirmed.

tiny.en mishears some keywords as near-sounding words ("free followers" → "three
followers", "porn" → "party", "send nudes" → "send news"). Giving whisper the libraries'
keywords as ``hotwords`` on everything finds many of them, but costs 2.4x the CPU and
invents keywords in neutral speech ("a picnic" → "a dick pic"). So the biased pass is
narrow on every side:

- **What is re-heard** (``suspects``, ``spans``): only near misses — runs of words that
  sound like a flag keyword (``KeywordMatcher.near_misses``, consonant skeletons within one
  edit) and hold a word whisper gave less than ``recheck_word_probability`` — with
  ``recheck_context_seconds`` of audio either side. Confident speech is never re-heard.
- **What whisper is told**: only the keywords nearly heard, as hotwords, not the libraries.
- **What is accepted** (``merge``): a keyword from the biased pass only when it is the
  keyword a suspect sounded like, heard at the suspect's time, with each word at least
  ``recheck_confirm_probability``. Words with no duration (whisper's loops at the end of a
  window) never count.

An accepted keyword's words replace the plain words at its time in the transcript, so the
verdict's text, hit offsets and times all describe the corrected transcript; the plain
text and each correction are kept in the verdict's ``details.recheck``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamguard.engines.gate import SpeechRegion
from streamguard.engines.local.keywords import KeywordMatch, KeywordMatcher
from streamguard.engines.local.recognizer import Transcript, Word

__all__ = ["Correction", "Suspect", "merge", "spans", "suspects"]

_OVERLAP = 0.05
"""Seconds two words must share to count as said at the same time (whisper's word times
are approximate)."""


@dataclass(frozen=True, slots=True)
class Suspect:
    """Uncertain words of the plain pass that sound like a keyword: worth a second listen."""

    keyword: str
    library_id: str
    start: float
    end: float
    """Seconds on the segment's timeline."""


def suspects(transcript: Transcript, matcher: KeywordMatcher, threshold: float) -> list[Suspect]:
    """Near misses (``KeywordMatcher.near_misses``) holding a word below ``threshold``."""
    found = []
    for miss in matcher.near_misses(transcript.text):
        words = [w for w in transcript.words if w.text_end > miss.start and w.text_start < miss.end]
        if words and min(w.probability for w in words) < threshold:
            found.append(Suspect(miss.keyword, miss.library.id, words[0].start, words[-1].end))
    return found


def spans(
    found: Sequence[Suspect], regions: Sequence[SpeechRegion], context: float
) -> tuple[SpeechRegion, ...]:
    """The stretches to hear again: each suspect with ``context`` seconds either side.

    Clipped to the speech ``regions`` and merged where they touch.
    """
    wanted = sorted((max(0.0, s.start - context), s.end + context) for s in found)
    merged: list[list[float]] = []
    for start, end in wanted:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    clipped = []
    for start, end in merged:
        for region in regions:
            first, last = max(start, region.start), min(end, region.end)
            if last - first > _OVERLAP:
                clipped.append(SpeechRegion(first, last))
    return tuple(clipped)


@dataclass(frozen=True, slots=True)
class Correction:
    """One keyword the biased pass heard and the plain pass's words it replaced."""

    keyword: str
    library_id: str
    heard: str
    replaced: str
    """The plain pass's words at that time ('' when it heard nothing there)."""
    probability: float
    """The lowest probability among the keyword's words in the biased pass."""
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for verdict details."""
        return {
            "keyword": self.keyword,
            "library_id": self.library_id,
            "heard": self.heard,
            "replaced": self.replaced,
            "probability": round(self.probability, 3),
            "start": self.start,
            "end": self.end,
        }


def _words_of(match: KeywordMatch, transcript: Transcript) -> list[Word]:
    return [w for w in transcript.words if w.text_end > match.start and w.text_start < match.end]


def _at(words: Sequence[Word], start: float, end: float) -> list[Word]:
    return [w for w in words if min(w.end, end) - max(w.start, start) > _OVERLAP]


def merge(
    plain: Transcript,
    biased: Transcript,
    matcher: KeywordMatcher,
    found: Sequence[Suspect],
    *,
    confirm: float,
) -> tuple[Transcript, list[Correction]]:
    """``plain`` with the confirmed keywords of ``biased`` spliced in, and what was changed.

    ``biased`` covers only the re-heard stretches of the same segment (times on the
    segment's timeline). A keyword counts when it is the keyword a suspect sounded like, is
    heard at the suspect's time, and each of its words has at least ``confirm`` probability.
    """
    corrections = _confirmed(plain, biased, matcher, found, confirm)
    if not corrections:
        return plain, []
    return _splice(plain, biased, corrections), corrections


def _confirmed(
    plain: Transcript,
    biased: Transcript,
    matcher: KeywordMatcher,
    found: Sequence[Suspect],
    confirm: float,
) -> list[Correction]:
    """The keywords of ``biased`` that pass ``merge``'s checks, first heard first, none
    overlapping another."""
    corrections: list[Correction] = []
    for match in matcher.match(biased.text):
        words = _words_of(match, biased)
        if not words:
            continue
        start, end = words[0].start, words[-1].end
        if end - start <= _OVERLAP or min(w.probability for w in words) < confirm:
            # Zero-length words are whisper's loops at the end of a window, not speech.
            continue
        if not any(
            s.keyword == match.keyword
            and s.library_id == match.library.id
            and min(s.end, end) - max(s.start, start) > _OVERLAP
            for s in found
        ):
            continue
        if any(c.start < end and start < c.end for c in corrections):
            continue
        replaced = _at(plain.words, start, end)
        corrections.append(
            Correction(
                keyword=match.keyword,
                library_id=match.library.id,
                heard=" ".join(w.text for w in words),
                replaced=" ".join(w.text for w in replaced),
                probability=min(w.probability for w in words),
                start=min([start, *(w.start for w in replaced)]),
                end=max([end, *(w.end for w in replaced)]),
            )
        )
    return corrections


def _splice(plain: Transcript, biased: Transcript, corrections: Sequence[Correction]) -> Transcript:
    """``plain`` with each correction's stretch taken from ``biased`` instead."""
    kept: list[tuple[str, float, float, float]] = [
        (w.text, w.start, w.end, w.probability)
        for w in plain.words
        if not any(_at([w], c.start, c.end) for c in corrections)
    ]
    for correction in corrections:
        kept += [
            (w.text, w.start, w.end, w.probability)
            for w in biased.words
            if correction.start - _OVERLAP <= (w.start + w.end) / 2 <= correction.end + _OVERLAP
        ]
    kept.sort(key=lambda w: w[1])
    text = ""
    spliced: list[Word] = []
    for spoken, start, end, probability in kept:
        if text:
            text += " "
        spliced.append(Word(spoken, start, end, probability, len(text), len(text) + len(spoken)))
        text += spoken
    return dataclasses.replace(
        plain, text=text, words=tuple(spliced), seconds=plain.seconds + biased.seconds
    )
