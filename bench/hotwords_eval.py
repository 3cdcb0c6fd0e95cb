"""Whisper hotwords from the keyword libraries: what they change on benign speech.

    .venv/bin/python -m bench.hotwords_eval [--voices hibari espeak:en-us] [--noise]

``engine.hotwords`` hears every segment with the keywords of libraries marked
``hotwords = true`` as whisper hotwords. The risk is that they put keywords into ordinary
speech. Benign sentences — the engine evaluation's neutral sentences and the *held-out*
benign sentences of the example libraries (never fitted, never used to choose anything
here) — are spoken by generated voices and recognised twice with tiny.en, without and with
the hotwords; the bench counts transcripts that changed, keyword hits (false flags), and
word errors against the sentence as written. The engine evaluation's harmful sentences are
recognised the same way, to show what hotwords buy. CPU is ``time.process_time()`` (one
model thread); the machine is shared, so compare the two columns, not the absolutes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.engine_eval import FLAGGED, NEUTRAL
from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.demo.samples import HIBARI_VOICE, mix, noise, silence, speak
from streamguard.engines.gate import SpeechRegion
from streamguard.engines.local.examples import ExampleKind, ExampleSet
from streamguard.engines.local.keywords import KeywordMatcher, LibrarySet
from streamguard.engines.local.normalize import tokenize
from streamguard.engines.local.recognizer import Recognizer

COMMON = frozenset({"the", "in", "my", "me", "for", "your", "from", "of", "to", "on", "dm"})


@dataclass
class Tally:
    """One set of sentences under one way of hearing."""

    utterances: int = 0
    hits: int = 0
    word_errors: int = 0
    words: int = 0
    cpu_seconds: float = 0.0
    examples: list[str] = field(default_factory=list)


def word_errors(reference: str, heard: str) -> int:
    """Word-level edit distance of two texts, on normalised words."""
    ref = [t.keys[0] for t in tokenize(reference)]
    hyp = [t.keys[0] for t in tokenize(heard)]
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        current = [i]
        for j, other in enumerate(hyp, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
            )
        previous = current
    return previous[-1]


def _words(text: str) -> list[str]:
    return [t.keys[0] for t in tokenize(text)]


def _utterance(text: str, voice: str, noisy: bool, seed: int) -> Pcm:
    audio = np.concatenate([silence(0.5), speak(text, voice), silence(0.5)])
    if noisy:
        audio = mix(audio, noise(len(audio) / SAMPLE_RATE, seed), 10.0)
    return audio


def _hear(recognizer: Recognizer, audio: Pcm, hotwords: str | None, tally: Tally) -> str:
    region = (SpeechRegion(0.0, len(audio) / SAMPLE_RATE),)
    started = time.process_time()
    (transcript,) = recognizer.transcribe_many([(audio, region)], hotwords=hotwords)
    tally.cpu_seconds += time.process_time() - started
    return transcript.text


def run(
    sentences: Sequence[str], voices: Sequence[str], noisy: bool, matcher: KeywordMatcher
) -> dict[str, Tally]:
    """Each sentence in each voice, heard plain and with the libraries' hotwords."""
    recognizer = Recognizer()
    tallies = {"plain": Tally(), "hotwords": Tally()}
    changed = tallies["changed"] = Tally()
    inserted = tallies["inserted"] = Tally()
    # The hotwords' own words, less function words any sentence has.
    vocabulary = set(_words(matcher.hotwords)) - COMMON
    for seed, (voice, sentence) in enumerate((v, s) for v in voices for s in sentences):
        audio = _utterance(sentence, voice, noisy, seed)
        heard = {}
        for name, hotwords in (("plain", None), ("hotwords", matcher.hotwords)):
            tally = tallies[name]
            heard[name] = text = _hear(recognizer, audio, hotwords, tally)
            tally.utterances += 1
            tally.words += len(tokenize(sentence))
            tally.word_errors += word_errors(sentence, text)
            if matcher.match(text):
                tally.hits += 1
                tally.examples.append(f"{sentence!r} heard as {text!r} ({voice})")
        changed.utterances += 1
        inserted.utterances += 1
        plain, biased = _words(heard["plain"]), _words(heard["hotwords"])
        if plain != biased:
            changed.hits += 1
            changed.examples.append(f"{heard['plain']!r} -> {heard['hotwords']!r} ({voice})")
        extra = [w for w in biased if w in vocabulary and biased.count(w) > plain.count(w)]
        if extra:
            inserted.hits += 1
            inserted.examples.append(f"{sorted(set(extra))} in {heard['hotwords']!r} ({voice})")
    return tallies


def _row(name: str, tallies: dict[str, Tally]) -> str:
    plain, biased, changed = tallies["plain"], tallies["hotwords"], tallies["changed"]
    inserted = tallies["inserted"]

    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.0f}% ({part}/{whole})" if whole else "-"

    return (
        f"| {name} | {plain.utterances} | {share(plain.hits, plain.utterances)} | "
        f"{share(biased.hits, biased.utterances)} | {share(changed.hits, changed.utterances)} | "
        f"{share(inserted.hits, inserted.utterances)} | "
        f"{share(plain.word_errors, plain.words)} | {share(biased.word_errors, biased.words)} | "
        f"{biased.cpu_seconds / max(plain.cpu_seconds, 1e-9):.2f} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voices", nargs="*", default=[HIBARI_VOICE, "espeak:en-us"])
    parser.add_argument("--noise", action="store_true", help="10 dB pink noise under speech")
    args = parser.parse_args(argv)
    matcher = LibrarySet([]).matcher
    held_out = [
        text
        for lib in ExampleSet([]).libraries
        if lib.kind is ExampleKind.BENIGN
        for text in lib.held_out
    ]
    runs = {
        "benign: engine eval neutral": run(NEUTRAL, args.voices, args.noise, matcher),
        "benign: held-out examples": run(held_out, args.voices, args.noise, matcher),
        "harmful: engine eval flagged": run(
            [text for text, _ in FLAGGED], args.voices, args.noise, matcher
        ),
    }
    condition = "10 dB noise" if args.noise else "clean"
    print(f"Hotwords ({condition}; voices {', '.join(args.voices)}; shared 2-core machine)\n")
    print(f"hotwords: {matcher.hotwords}\n")
    print(
        "| sentences | utterances | keyword hit, plain | keyword hit, hotwords | words "
        "changed | a hotword's word inserted | word errors, plain | word errors, hotwords | "
        "CPU hotwords/plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, tallies in runs.items():
        print(_row(name, tallies))
    for name, tallies in runs.items():
        for kind in ("plain", "hotwords", "inserted"):
            for example in tallies[kind].examples:
                print(f"- {name}, {kind}: {example}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
