"""The rooms' audio: the sample room's turns, the abusive one marked by a quiet pilot tone.

The AMS emulator of the soak judges with :class:`PilotJudge` (a fake at our engine seam, as
``ToneEngine`` is): speech that carries the pilot is abusive, other speech is clean. The
pilot sits far below the voice, so the daemon's real speech gate still hears speech, and
far above anything speech puts in its narrow band, so the judge cannot mistake one for the
other. Every room plays the same turns; each starts at its own point of the loop.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.demo.samples import ROOM_SCRIPT, noise, silence, speak
from streamguard.ingest.encoder import encode_pcm

__all__ = ["PILOT_HZ", "PilotJudge", "broadcast", "marked_room"]

PILOT_HZ = 2500.0
PILOT_LEVEL = 0.05  # amplitude, full scale 1: -26 dBFS, under a voice at about -15 dBFS
_BAND_HZ = 25.0
_PILOT_SHARE = 0.01  # of a clip's energy in the pilot's band: above this, it was marked
_SILENCE_RMS = 200.0


def _turn(voice: str, text: str, abusive: bool) -> Pcm:
    speech = speak(text, voice).astype(np.float64)
    if abusive:
        t = np.arange(len(speech)) / SAMPLE_RATE
        speech += np.sin(2 * np.pi * PILOT_HZ * t) * PILOT_LEVEL * 32767
    return np.clip(speech, -32768, 32767).astype(np.int16)


def marked_room() -> Pcm:
    """The sample room (its fourth turn abusive), the abusive turn marked with the pilot."""
    parts: list[Pcm] = [silence(1.0)]
    for index, (voice, text) in enumerate(ROOM_SCRIPT):
        parts += [_turn(voice, text, abusive=index == 3), silence(1.5)]
    speech = np.concatenate(parts)
    bed = noise(len(speech) / SAMPLE_RATE, 0) * 10 ** (-60 / 20)
    mixed = speech.astype(np.float64) / 32768.0 + bed
    return (np.clip(mixed, -1, 1) * 32767).astype(np.int16)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamguard" / "bench-soak"


def broadcast(seconds: float) -> tuple[bytes, float]:
    """The marked room looped for at least ``seconds``, as MP3 (64 kbit/s): its bytes and
    exact duration. Made once per length, then read from the cache."""
    loop = marked_room()
    repeats = int(seconds * SAMPLE_RATE // len(loop)) + 1
    key = hashlib.sha256(loop.tobytes() + repeats.to_bytes(4, "big")).hexdigest()[:20]
    path = _cache_dir() / f"room-{key}.mp3"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part.mp3")
        encode_pcm(np.tile(loop, repeats), partial, "mp3", 64_000)
        partial.replace(path)
    with av.open(str(path)) as container:
        assert container.duration is not None
        return path.read_bytes(), container.duration / 1_000_000


class PilotJudge:
    """The emulator's judge: Block "Abuse" when the clip carries the pilot, no speech when
    quiet, Pass otherwise (an ``Engine`` at our own seam, like ``ToneEngine``)."""

    name = "pilot-fake"
    version = "1"
    segments_in_flight = 1

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        samples = segment.samples.astype(np.float64)
        rms = float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
        clean = Verdict(
            segment_id=segment.id,
            outcome=Outcome.MODERATED,
            engine=self.name,
            engine_version=self.version,
            text="hello there",
        )
        if rms < _SILENCE_RMS:
            return replace(clean, outcome=Outcome.NO_SPEECH, text="", reason="no speech")
        if pilot_share(samples) < _PILOT_SHARE:
            return clean
        return replace(
            clean,
            suggestion=Suggestion.BLOCK,
            label="Abuse",
            sub_label="Insult",
            score=93,
            hit=True,
            text="shut up you idiot",
        )

    async def aclose(self) -> None:
        return None


def pilot_share(samples: npt.NDArray[np.float64]) -> float:
    """The share of the audio's energy in the pilot's narrow band."""
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    band = (freqs > PILOT_HZ - _BAND_HZ) & (freqs < PILOT_HZ + _BAND_HZ)
    total = float(spectrum.sum())
    return float(spectrum[band].sum()) / total if total > 0 else 0.0
