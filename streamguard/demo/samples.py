"""Generated sample audio for the demo, the tests and the engine benchmark — nothing downloaded.

Speech comes from ``espeak-ng`` (Debian; robotic, pessimistic for recognition) or
``hibari-tts`` (PyPI extra ``samples``; a natural voice inside the wheel). Music (chords, a
melody and a beat) and noise are synthesised with numpy, and ``mix`` lays speech over them at
a chosen signal-to-noise ratio. Everything is 16 kHz mono int16, the segmenter's format.

``python -m streamguard.demo.samples OUT.mp3`` writes the demo's "sample room": a
minute of neutral talk with one abusive phrase in it (``scripts/make_samples`` calls this).
"""

from __future__ import annotations

import argparse
import functools
import io
import shutil
import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.ingest.encoder import ClipFormat, encode_pcm

__all__ = [
    "ESPEAK_VOICES",
    "HIBARI_VOICE",
    "ROOM_SCRIPT",
    "SampleError",
    "mix",
    "music",
    "noise",
    "room",
    "speak",
    "write_audio",
]

HIBARI_VOICE = "hibari"
"""The natural voice: hibari-tts's "heart" voice, the one inside its wheel."""
ESPEAK_VOICES = ("espeak:en-us", "espeak:en-gb+m3", "espeak:en-us+f2")
"""Robotic voices: espeak-ng voice names with variants."""

ROOM_SCRIPT = (
    (HIBARI_VOICE, "Hi everyone, welcome back to the room. Grab a seat and say hello."),
    ("espeak:en-us", "Thanks for having me. I just got back from the market."),
    (HIBARI_VOICE, "Today we are talking about the new map and the patch notes."),
    ("espeak:en-gb+m3", "Shut up, you idiot. I will kill you."),
    (HIBARI_VOICE, "Okay, let's keep it friendly please. Who wants to go next?"),
    ("espeak:en-us+f2", "I think the new update looks great. The music is lovely too."),
)
"""The sample room: neutral talk, and one abusive, threatening turn (the fourth)."""

FloatAudio = npt.NDArray[np.float32]


class SampleError(RuntimeError):
    """A sample could not be generated (a speech synthesiser is missing or failed)."""


def _resample(audio: npt.NDArray[np.int16], rate: int) -> Pcm:
    if rate == SAMPLE_RATE:
        return audio
    frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)


@functools.lru_cache(maxsize=1)
def _hibari() -> Any:
    try:
        # hibari ships no type information (and pyproject's override names hibari_tts).
        from hibari import Hibari  # type: ignore[import-untyped]
    except ImportError as exc:
        raise SampleError("hibari-tts is missing: pip install 'streamguard[samples]'") from exc
    return Hibari()


def speak(text: str, voice: str = HIBARI_VOICE, *, rate: int = 165) -> Pcm:
    """``text`` spoken by ``voice`` (``HIBARI_VOICE`` or ``"espeak:<voice>"``), 16 kHz int16.

    ``rate`` is espeak-ng's speed in words per minute.
    """
    if voice == HIBARI_VOICE:
        spoken = np.asarray(_hibari()(text), dtype=np.float32)
        pcm = (np.clip(spoken, -1.0, 1.0) * 32767).astype(np.int16)
        return _resample(pcm, int(_hibari().sample_rate))
    if not voice.startswith("espeak:"):
        raise SampleError(f"unknown voice {voice!r}: use {HIBARI_VOICE!r} or 'espeak:<voice>'")
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SampleError("espeak-ng is not installed (apt-get install espeak-ng)")
    result = subprocess.run(
        [binary, "-v", voice.removeprefix("espeak:"), "-s", str(rate), "--stdout", text],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise SampleError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()}")
    with wave.open(io.BytesIO(result.stdout)) as wav:
        rate_hz = wav.getframerate()
        # espeak-ng streams a WAV whose header has no length; read what is there.
        pcm = np.frombuffer(result.stdout[44:], dtype="<i2").astype(np.int16)
    return _resample(pcm, rate_hz)


def noise(seconds: float, seed: int = 0) -> FloatAudio:
    """Broadband noise with a pinkish slope (fan, street, crowd hiss), unit RMS."""
    rng = np.random.default_rng(seed)
    count = int(seconds * SAMPLE_RATE)
    white = rng.standard_normal(count)
    spectrum = np.fft.rfft(white)
    frequencies = np.fft.rfftfreq(count, 1 / SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(frequencies, 20.0))
    shaped = np.fft.irfft(spectrum, count)
    return np.asarray(shaped / np.sqrt(np.mean(shaped**2)), dtype=np.float32)


def music(seconds: float, seed: int = 0) -> FloatAudio:
    """Instrumental music: a chord progression, a melody over it and a beat, unit RMS."""
    rng = np.random.default_rng(seed)
    count = int(seconds * SAMPLE_RATE)
    t = np.arange(count) / SAMPLE_RATE
    beat = 0.5 * (1 + int(rng.integers(0, 3)) * 0.25)  # seconds per beat
    roots = [0, 5, 7, 3]  # I-IV-V-iii in semitones over A3
    out = np.zeros(count)

    def tone(freq: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        return np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)

    bar = (t // (4 * beat)).astype(int) % len(roots)
    root = 220.0 * 2 ** (np.take(roots, bar) / 12)
    for interval in (0, 4, 7):
        out += 0.3 * tone(root * 2 ** (interval / 12))
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    notes = rng.choice(scale, size=int(seconds / beat) + 2)
    note = notes[(t // beat).astype(int)]
    within = (t % beat) / beat
    out += 0.5 * tone(440.0 * 2 ** (note / 12)) * np.exp(-3 * within)
    kick = np.sin(2 * np.pi * 60 * (t % beat)) * np.exp(-25 * (t % beat))
    out += 0.8 * kick
    return np.asarray(out / np.sqrt(np.mean(out**2)), dtype=np.float32)


def mix(speech: Pcm, background: FloatAudio | None, snr_db: float | None) -> Pcm:
    """``speech`` over ``background`` (looped or cut to length) at ``snr_db``; None = clean.

    The ratio is of speech power while speaking (samples above -50 dBFS) to background power.
    """
    clean = speech.astype(np.float64) / 32768.0
    if background is None or snr_db is None:
        return speech
    bed = np.resize(background.astype(np.float64), len(clean))
    active = clean[np.abs(clean) > 10 ** (-50 / 20)]
    speech_rms = np.sqrt(np.mean(active**2)) if len(active) else 0.05
    bed *= speech_rms / 10 ** (snr_db / 20) / np.sqrt(np.mean(bed**2))
    mixed = clean + bed
    peak = np.max(np.abs(mixed))
    if peak > 0.99:
        mixed *= 0.99 / peak
    return (mixed * 32767).astype(np.int16)


def silence(seconds: float) -> Pcm:
    """Digital silence."""
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)


def room(
    script: Sequence[tuple[str, str]] = ROOM_SCRIPT, *, pause: float = 1.5, seed: int = 0
) -> Pcm:
    """A voice room: turns of ``(voice, text)`` with pauses, over quiet room tone."""
    parts: list[Pcm] = [silence(1.0)]
    for voice, text in script:
        parts += [speak(text, voice), silence(pause)]
    speech = np.concatenate(parts)
    tone = noise(len(speech) / SAMPLE_RATE, seed) * 10 ** (-60 / 20)
    mixed = speech.astype(np.float64) / 32768.0 + tone
    return (np.clip(mixed, -1, 1) * 32767).astype(np.int16)


def write_audio(path: Path, samples: Pcm, *, bitrate: int = 32_000) -> None:
    """Encode ``samples`` to ``path``; the format (mp3, m4a or wav) follows the suffix."""
    formats: dict[str, ClipFormat] = {".mp3": "mp3", ".m4a": "m4a", ".wav": "wav"}
    fmt = formats.get(path.suffix)
    if fmt is None:
        raise SampleError(f"{path}: write .mp3, .m4a or .wav")
    encode_pcm(samples, path, fmt, bitrate)


def main(argv: Sequence[str] | None = None) -> None:
    """Write the sample room to the given file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="output file (.mp3, .m4a or .wav)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    samples = room()
    write_audio(args.out, samples)
    print(f"{args.out}: {len(samples) / SAMPLE_RATE:.1f} s, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
