"""Recognition alone: word errors and CPU of whisper models on the held-out sentences, spoken.

    .venv/bin/python -m bench.whisper_wer [--every 6] [--model-dir DIR] [--languages]

Every N-th sentence of each category of both held-out halves (``bench.semantic_speech``'s
sets and voices: espeak-ng voices nothing was tuned with, one per sentence in turn), clean,
recognised whole (no gate, no second listen, no libraries) by whisper tiny.en, whisper base
made to transcribe English (``engine.model_language = "en"``), and whisper base detecting
the language, in the same run on the same audio. Word error rate is the word edit distance
over the reference's words, after lower-casing and dropping punctuation (so "$200" against
"200 dollars" counts as errors: a floor, not a normalised WER). CPU is
``time.process_time()`` per audio second, one thread.

``--languages`` then measures whisper base's language detection, what routing to
``engine.multilingual_model`` relies on: the same English utterances and ``FOREIGN``
sentences (espeak-ng's German, French, Spanish, Italian, Portuguese and Dutch voices), each
clean, at 10 dB noise and through the telephone band (``bench.engine_eval``'s conditions),
and how often the detected language is the one spoken.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from pathlib import Path

from bench.engine_eval import _utterance_segment
from bench.semantic_speech import HELD_OUT_VOICES, SETS, held_out
from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.demo.samples import speak
from streamguard.engines.gate import SpeechRegion
from streamguard.engines.local import Recognizer
from streamguard.engines.local.models import WHISPER_BASE_SHA256, assemble_whisper_base

FOREIGN = (
    ("de", "espeak:de", "Ich werde dich heute Abend finden und umbringen, du Idiot."),
    ("de", "espeak:de", "Wir gehen am Sonntag mit den Kindern in den Park."),
    ("fr", "espeak:fr", "Nous allons au marché demain matin avec mes parents."),
    ("es", "espeak:es", "Te voy a matar esta noche, eres un idiota."),
    ("es", "espeak:es", "Mañana vamos a la playa con mis amigos."),
    ("it", "espeak:it", "Domani andiamo al mare con i miei amici."),
    ("pt", "espeak:pt", "Amanhã vamos à praia com os meus amigos."),
    ("nl", "espeak:nl", "Morgen gaan we met vrienden naar het strand."),
)
LANGUAGE_CONDITIONS = ("clean", "10 dB noise", "telephone")


def languages(recognizer: Recognizer, spoken: Sequence[tuple[str, Pcm]]) -> None:
    """Print, per condition, how often the language detected is the one spoken."""
    print("\n| spoken | " + " | ".join(LANGUAGE_CONDITIONS) + " |")
    print("|---|" + "---|" * len(LANGUAGE_CONDITIONS))
    rows: dict[str, list[list[str]]] = {}
    for n, (language, pcm) in enumerate(spoken):
        heard = []
        for condition in LANGUAGE_CONDITIONS:
            segment = _utterance_segment(pcm, condition, n, 0)
            regions = [SpeechRegion(0.0, segment.duration)]
            heard.append(recognizer.transcribe(segment.samples, regions).language)
        rows.setdefault(language, []).append(heard)
    for language, heard_rows in rows.items():
        cells = []
        for column in range(len(LANGUAGE_CONDITIONS)):
            detected = [row[column] for row in heard_rows]
            others = sorted({d for d in detected if d != language})
            right = sum(d == language for d in detected)
            cells.append(f"{right}/{len(detected)}" + (f" ({', '.join(others)})" if others else ""))
        print(f"| {language} | " + " | ".join(cells) + " |", flush=True)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def edits(reference: Sequence[str], heard: Sequence[str]) -> int:
    """Word edit distance (substitutions, insertions, deletions)."""
    row = list(range(len(heard) + 1))
    for i, said in enumerate(reference, 1):
        diagonal, row[0] = row[0], i
        for j, word in enumerate(heard, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (said != word))
    return row[len(heard)]


def measure(recognizer: Recognizer, utterances: Sequence[tuple[str, Pcm]]) -> str:
    """One markdown row: word error rate, utterances heard in another language, CPU."""
    errors = total = other = 0
    cpu = audio = 0.0
    for text, pcm in utterances:
        seconds = len(pcm) / SAMPLE_RATE
        started = time.process_time()
        transcript = recognizer.transcribe(pcm, [SpeechRegion(0.0, seconds)])
        cpu += time.process_time() - started
        audio += seconds
        errors += edits(words(text), words(transcript.text))
        total += len(words(text))
        other += transcript.language != "en"
    return f"{100 * errors / total:.1f}% | {other}/{len(utterances)} | {cpu / audio:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=int, default=6, help="keep every N-th sentence")
    parser.add_argument("--model-dir", type=Path, default=Path("~/.cache/streamguard/whisper-base"))
    parser.add_argument("--languages", action="store_true", help="language detection too")
    args = parser.parse_args(argv)
    texts = [
        text
        for path in SETS
        for category in held_out(path, args.every).values()
        for text in category
    ]
    utterances = [
        (text, speak(text, HELD_OUT_VOICES[n % len(HELD_OUT_VOICES)]))
        for n, text in enumerate(texts)
    ]
    base = str(assemble_whisper_base(args.model_dir))
    models = {
        "whisper tiny.en": Recognizer(),
        'whisper base, model_language = "en"': Recognizer(
            base, sha256=WHISPER_BASE_SHA256, language="en"
        ),
        "whisper base, language detected": Recognizer(base, sha256=WHISPER_BASE_SHA256),
    }
    print(f"{len(utterances)} held-out utterances, clean, every {args.every}\n")
    print("| model | word errors | heard as another language | CPU s per audio s |")
    print("|---|---|---|---|")
    for name, recognizer in models.items():
        recognizer.load()
        print(f"| {name} | {measure(recognizer, utterances)} |", flush=True)
    if args.languages:
        spoken = [("en", pcm) for _, pcm in utterances]
        spoken += [(language, speak(text, voice)) for language, voice, text in FOREIGN]
        languages(models["whisper base, language detected"], spoken)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
