"""The local engine on generated speech: real speech gate, real whisper tiny.en, real libraries."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import av
import faster_whisper
import numpy as np
import pytest

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.chunk import SAMPLE_RATE, AudioChunk, Pcm
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.demo.samples import ROOM_SCRIPT, music, noise, room, write_audio
from streamguard.engines.gate import SpeechRegion, SpeechReport
from streamguard.engines.local import HealthEvent, HealthKind, LocalEngine, Recognizer, SpeechGate
from streamguard.engines.local.assess import UNINTELLIGIBLE
from streamguard.engines.local.recognizer import Transcript
from streamguard.ingest.segmenter import Segmenter
from tests.support.speech import CONDITIONS, SpeechCache, segment_of

pytestmark = pytest.mark.slow

FLAGGED = [
    ("hibari", "Shut up, you stupid idiot.", "en-insults", "Abuse"),
    ("espeak:en-us", "I am going to kill you tonight.", "en-threats", "Abuse"),
    ("hibari", "Stop watching porn in the chat.", "en-sexual", "Porn"),
    ("espeak:en-gb+m3", "Get free followers, use my promo code.", "en-spam", "Ad"),
]
NEUTRAL = [
    ("hibari", "The skill you need is patience, and a good map of the city."),
    ("espeak:en-us", "We are planning a picnic by the river on Sunday afternoon."),
]
# Every utterance clean, and each under one background at 10 dB (alternating noise and
# music), to keep the model's time per test run modest; bench/engine_eval does the full grid.
FLAGGED_CASES = [
    pytest.param(*case, condition, id=f"{case[2]}-{case[0]}-{condition}")
    for n, case in enumerate(FLAGGED)
    for condition in ("clean", CONDITIONS[1 + n % 2])
]
NEUTRAL_CASES = [
    pytest.param(*case, condition, id=f"{case[0]}-{condition}")
    for n, case in enumerate(NEUTRAL)
    for condition in ("clean", CONDITIONS[1 + n % 2])
]


@pytest.fixture(scope="session")
def recognizer() -> Recognizer:
    """Whisper tiny.en, loaded once for the whole session."""
    model = Recognizer()
    model.load()
    return model


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechCache:
    return SpeechCache(tmp_path_factory.mktemp("speech"))


@pytest.fixture
def events() -> list[HealthEvent]:
    return []


@pytest.fixture
def engine_factory(recognizer: Recognizer, events: list[HealthEvent]) -> type[LocalEngine]:
    """LocalEngine sharing the session's model; the test still owns (and closes) each engine."""

    class SharedModelEngine(LocalEngine):
        def __init__(self, config: LocalEngineConfig | None = None, **kwargs: object) -> None:
            super().__init__(
                config,
                recognizer=recognizer,
                on_health=events.append,
                **kwargs,  # type: ignore[arg-type]
            )

    return SharedModelEngine


async def _judge(engine_type: type[LocalEngine], segment: Segment) -> Verdict:
    async with engine_type() as engine:
        return await engine.moderate(segment)


@pytest.mark.parametrize(("voice", "text", "library", "label", "condition"), FLAGGED_CASES)
async def test_flagged_phrases_are_flagged_with_their_library_and_label(
    engine_factory: type[LocalEngine],
    speech: SpeechCache,
    voice: str,
    text: str,
    library: str,
    label: str,
    condition: str,
) -> None:
    spoken = speech(text, voice)
    verdict = await _judge(engine_factory, segment_of(spoken, condition, lead=1.5))
    assert verdict.outcome is Outcome.MODERATED
    assert verdict.hit, verdict.text
    assert library in {k.library_id for k in verdict.keywords}, verdict.text
    assert verdict.label == label
    assert verdict.suggestion in {Suggestion.REVIEW, Suggestion.BLOCK}
    assert {"moaning", "screams"} <= set(verdict.unsupported)
    for hit in verdict.keywords:
        assert verdict.text[hit.text_start : hit.text_end] == hit.heard
        assert hit.time_start is not None
        assert hit.time_end is not None
        # Word times are on the segment's timeline: inside the utterance (with slack for
        # whisper's word-boundary estimates).
        assert 1.0 <= hit.time_start < hit.time_end <= 1.5 + len(spoken) / SAMPLE_RATE + 0.5


@pytest.mark.parametrize(("voice", "text", "condition"), NEUTRAL_CASES)
async def test_neutral_speech_passes_but_never_claims_to_judge_moans_or_screams(
    engine_factory: type[LocalEngine], speech: SpeechCache, voice: str, text: str, condition: str
) -> None:
    verdict = await _judge(engine_factory, segment_of(speech(text, voice), condition))
    assert verdict.outcome is Outcome.MODERATED
    assert (verdict.hit, verdict.suggestion, verdict.keywords) == (False, Suggestion.PASS, ())
    assert verdict.text
    assert set(verdict.unsupported) >= {"moaning", "screams"}
    assert verdict.details["gate"]["speech_seconds"] > 1.0


def _segment(samples: Pcm) -> Segment:
    return segment_of(samples, lead=0.0, seconds=len(samples) / SAMPLE_RATE)


@pytest.mark.parametrize(
    "name",
    ["silence", "room tone", "music", "noise", "loud music", "loud noise"],
)
async def test_music_noise_and_silence_raise_no_hit(
    engine_factory: type[LocalEngine], name: str
) -> None:
    seconds = 15.0
    background = {
        "silence": np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32),
        "room tone": noise(seconds, 1) * 10 ** (-65 / 20),
        "music": music(seconds, 2) * 10 ** (-25 / 20),
        "noise": noise(seconds, 3) * 10 ** (-25 / 20),
        "loud music": music(seconds, 4) * 10 ** (-10 / 20),
        "loud noise": noise(seconds, 5) * 10 ** (-10 / 20),
    }[name]
    samples = (np.clip(background, -1, 1) * 32767).astype(np.int16)
    segment = _segment(samples)
    async with engine_factory() as engine:
        verdict = await engine.moderate(segment)
        assert not verdict.hit
        assert verdict.keywords == ()
        assert set(verdict.unsupported) >= {"moaning", "screams"}
        if name in {"silence", "room tone"}:
            assert (verdict.outcome, verdict.reason) == (Outcome.NO_SPEECH, "no speech")
            # Quiet audio is settled by the energy pre-check, without the speech model.
            assert verdict.details["gate"]["model_seconds"] == 0.0
        if verdict.outcome is Outcome.NO_SPEECH:
            assert engine.counters.no_speech_seconds_saved == pytest.approx(segment.duration)


async def test_non_english_speech_is_reported_as_not_judged(
    engine_factory: type[LocalEngine], speech: SpeechCache
) -> None:
    german = speech(
        "Guten Tag, ich heiße Anna und ich wohne seit zehn Jahren in Berlin.", "espeak:de"
    )
    verdict = await _judge(engine_factory, segment_of(german))
    assert verdict.outcome is Outcome.MODERATED
    assert UNINTELLIGIBLE in verdict.unsupported


async def test_sample_room_flags_only_the_abusive_turn(
    engine_factory: type[LocalEngine], tmp_path: Path
) -> None:
    path = tmp_path / "room.mp3"
    write_audio(path, room())
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        decoded = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    samples = np.concatenate(decoded).astype(np.int16)
    segmenter = Segmenter("room-1", datetime(2026, 1, 1, tzinfo=UTC), 15)
    segments = segmenter.push(AudioChunk(samples, datetime(2026, 1, 1, tzinfo=UTC)))
    tail = segmenter.flush()
    segments += [tail] if tail else []
    async with engine_factory() as engine:
        verdicts = [await engine.moderate(s) for s in segments]
    flagged = [v for v in verdicts if v.hit]
    assert len(flagged) == 1, [v.text for v in verdicts]
    assert {k.keyword for k in flagged[0].keywords} >= {"kill you"}
    assert flagged[0].suggestion is Suggestion.BLOCK
    assert "kill" in ROOM_SCRIPT[3][1]


def _write_library(path: Path, keyword: str, mtime: int) -> None:
    path.write_text(
        f'[[library]]\nid = "room-rules"\nname = "Room rules"\nlabel = "Custom"\n'
        f'score = 95\nkeywords = ["{keyword}"]\n'
    )
    os.utime(path, ns=(mtime, mtime))


async def test_library_edits_apply_without_restart(
    engine_factory: type[LocalEngine], speech: SpeechCache, tmp_path: Path
) -> None:
    library = tmp_path / "room.toml"
    _write_library(library, "cherry pie", 1_000_000_000)
    segment = segment_of(speech("I would really like some apple pie.", "hibari"))
    config = LocalEngineConfig(libraries=[library], reload_seconds=0)
    async with engine_factory(config) as engine:
        before = await engine.moderate(segment)
        _write_library(library, "apple pie", 2_000_000_000)
        after = await engine.moderate(segment)
        assert engine.counters.library_reloads == 1
    assert not before.hit
    assert [(k.keyword, k.library_id, k.label) for k in after.keywords] == [
        ("apple pie", "room-rules", "Custom")
    ]
    assert after.suggestion is Suggestion.BLOCK


class HeldGate:
    """A speech gate that holds the worker until the test lets it go, then hears nothing."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def detect(self, samples: Pcm) -> SpeechReport:
        self.entered.set()
        self.release.wait(timeout=30)
        return SpeechReport((), 0.0, len(samples) / SAMPLE_RATE, 0.0, 0.0)


async def test_overload_records_skipped_segments_and_raises_a_health_event(
    engine_factory: type[LocalEngine], events: list[HealthEvent]
) -> None:
    gate = HeldGate()
    quiet = np.zeros(SAMPLE_RATE, dtype=np.int16)
    config = LocalEngineConfig(workers=1, backlog=1)
    async with engine_factory(config, gate=gate) as engine:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(engine.moderate(segment_of(quiet, seq=1)), name="segment-1")
            await asyncio.to_thread(gate.entered.wait, 30)
            waiting = group.create_task(engine.moderate(segment_of(quiet, seq=2)), name="segment-2")
            await asyncio.sleep(0)  # segment 2 takes the one backlog place
            assert (engine.counters.running, engine.counters.backlog_depth) == (1, 1)
            skipped = await engine.moderate(segment_of(quiet, seq=3))
            gate.release.set()
        counters = engine.counters
    assert (skipped.outcome, skipped.reason) == (Outcome.SKIPPED_OVERLOADED, "skipped: overloaded")
    assert skipped.segment_id.endswith("-00003")
    assert running.result().outcome is Outcome.NO_SPEECH
    assert waiting.result().outcome is Outcome.NO_SPEECH
    assert (counters.segments, counters.skipped_overloaded, counters.no_speech) == (3, 1, 2)
    assert [(e.kind, e.segment_id) for e in events] == [(HealthKind.OVERLOADED, skipped.segment_id)]
    assert counters.health_events[HealthKind.OVERLOADED] == 1


class BrokenGate:
    """A speech gate whose model fails."""

    def detect(self, samples: Pcm) -> SpeechReport:
        raise RuntimeError("vad model crashed")


async def test_a_failing_gate_fails_open_and_the_segment_is_moderated(
    engine_factory: type[LocalEngine], speech: SpeechCache, events: list[HealthEvent]
) -> None:
    segment = segment_of(speech("I am going to kill you tonight.", "espeak:en-us"))
    async with engine_factory(gate=BrokenGate()) as engine:
        verdict = await engine.moderate(segment)
        assert engine.counters.gate_failures == 1
        assert engine.counters.health_events[HealthKind.GATE_FAILED] == 1
    assert verdict.outcome is Outcome.MODERATED
    assert verdict.hit
    assert verdict.details["gate_error"] == "RuntimeError: vad model crashed"
    assert [e.kind for e in events] == [HealthKind.GATE_FAILED]


async def test_a_closed_engine_records_segments_as_failed(
    engine_factory: type[LocalEngine],
) -> None:
    engine = engine_factory()
    await engine.aclose()
    verdict = await engine.moderate(segment_of(np.zeros(SAMPLE_RATE, dtype=np.int16)))
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "failed: engine closed")


def test_gate_finds_speech_regions_where_speech_is(speech: SpeechCache) -> None:
    spoken = speech("Hello there, how are you doing today?", "hibari")
    segment = segment_of(spoken, "noise10", lead=3.0, seconds=12.0)
    report = SpeechGate().detect(segment.samples)
    assert report.has_speech
    end = 3.0 + len(spoken) / SAMPLE_RATE
    assert all(r.start >= 2.5 and r.end <= end + 0.5 for r in report.regions)
    assert report.speech_seconds == pytest.approx(len(spoken) / SAMPLE_RATE, abs=1.0)


def test_verdict_json_carries_hits_and_unsupported() -> None:
    verdict = Verdict(
        segment_id="s",
        outcome=Outcome.MODERATED,
        engine="local",
        engine_version="v",
        unsupported=("moaning",),
    )
    assert verdict.to_json()["unsupported"] == ["moaning"]


async def test_queued_segments_share_a_recognition_pass_and_keep_their_own_words(
    engine_factory: type[LocalEngine], speech: SpeechCache
) -> None:
    texts = [
        ("hibari", "We are planning a picnic by the river."),
        ("espeak:en-us", "I am going to kill you tonight."),
        ("hibari", "The weather has been lovely all week."),
    ]
    segments = [
        segment_of(speech(text, voice), seq=n, lead=1.0 + n)
        for n, (voice, text) in enumerate(texts)
    ]
    async with (
        engine_factory(LocalEngineConfig(workers=1)) as engine,
        asyncio.TaskGroup() as group,
    ):
        tasks = [group.create_task(engine.moderate(s), name=f"segment-{s.seq}") for s in segments]
    verdicts = [t.result() for t in tasks]
    # Worker places are taken in turn: the three gates run first, then one pass recognises all.
    assert [v.details["transcript"]["batch_size"] for v in verdicts] == [3, 3, 3]
    assert [v.hit for v in verdicts] == [False, True, False]
    assert "picnic" in verdicts[0].text
    assert "kill" in verdicts[1].text
    assert "kill" not in verdicts[2].text
    assert "weather" in verdicts[2].text
    (hit, *_) = verdicts[1].keywords
    assert hit.time_start is not None
    assert 1.5 <= hit.time_start <= 2.0 + len(speech(texts[1][1], texts[1][0])) / SAMPLE_RATE


class GermanModel(Recognizer):
    """A multilingual recogniser that hears German (a fake at our own seam: no multilingual
    model is available offline)."""

    @property
    def multilingual(self) -> bool:
        return True

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        text = "Guten Tag, ich heiße Anna."
        return [Transcript(text, (), "de", 0.97, -0.3, 0.1, 1.1, 0.9, (), 3.0, 0.1) for _ in items]


async def test_multilingual_model_reports_the_language_it_cannot_judge(
    speech: SpeechCache,
) -> None:
    segment = segment_of(speech("Good morning everyone.", "hibari"))
    async with LocalEngine(recognizer=GermanModel()) as engine:
        verdict = await engine.moderate(segment)
    assert verdict.outcome is Outcome.MODERATED
    assert verdict.unsupported == ("moaning", "screams", "non-English speech (de)")
    assert not verdict.hit


class _Misheard(Recognizer):
    """The session's model, except that the plain pass hears ``swaps`` (a fake at our seam).

    Which words tiny.en mishears, and how sure it is of them, varies with the CPU's float
    arithmetic; this makes the plain pass's mistake certain so that the second listen,
    which is the real model on the real audio, is what the test exercises. Each swapped
    word gets ``probability``; every other word is made sure of (0.99), so suspects come
    only from the swaps.
    """

    def __init__(self, inner: Recognizer, swaps: dict[str, str], probability: float = 0.3):
        super().__init__()
        self.inner = inner
        self.swaps = swaps
        self.probability = probability

    def load(self) -> faster_whisper.WhisperModel:
        return self.inner.load()

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        heard = self.inner.transcribe_many(items, hotwords=hotwords)
        return heard if hotwords else [self._mishear(t) for t in heard]

    def _mishear(self, transcript: Transcript) -> Transcript:
        text, words = "", []
        for word in transcript.words:
            bare = word.text.strip(".,!?").lower()
            spoken, probability = self.swaps.get(bare, word.text), self.probability
            if bare not in self.swaps:
                probability = 0.99
            text += " " if text else ""
            words.append(
                dataclasses.replace(
                    word,
                    text=spoken,
                    probability=probability,
                    text_start=len(text),
                    text_end=len(text) + len(spoken),
                )
            )
            text += spoken
        swapped = {w.text.strip(".,!?").lower() for w in transcript.words} & set(self.swaps)
        assert swapped, f"the real model did not hear {sorted(self.swaps)}: {transcript.text!r}"
        return dataclasses.replace(transcript, text=text, words=tuple(words))


@pytest.mark.parametrize(
    ("voice", "text", "swaps", "keyword", "library", "label"),
    [
        # Mishearings tiny.en makes with other voices, noise or CPUs: "three followers" ...
        (
            "hibari",
            "Get free followers today.",
            {"free": "three"},
            "free followers",
            "en-spam",
            "Ad",
        ),
        # ... and "party" for "porn".
        (
            "hibari",
            "Stop watching porn in the chat.",
            {"porn": "party"},
            "porn",
            "en-sexual",
            "Porn",
        ),
    ],
)
async def test_the_second_listen_finds_a_keyword_the_plain_pass_misheard(
    recognizer: Recognizer,
    speech: SpeechCache,
    voice: str,
    text: str,
    swaps: dict[str, str],
    keyword: str,
    library: str,
    label: str,
) -> None:
    segment = segment_of(speech(text, voice))
    misheard = _Misheard(recognizer, swaps)
    async with LocalEngine(LocalEngineConfig(recheck=False), recognizer=misheard) as engine:
        plain = await engine.moderate(segment)
    async with LocalEngine(recognizer=misheard) as engine:
        verdict = await engine.moderate(segment)
        rechecked = engine.counters.rechecked_seconds
    assert rechecked == pytest.approx(verdict.details["recheck"]["rechecked_seconds"], abs=1e-3)
    # The plain pass misses it; the second listen finds it, in the right library.
    assert not plain.hit, plain.text
    assert "recheck" not in plain.details
    assert verdict.hit, verdict.details["recheck"]
    (hit,) = verdict.keywords
    assert (hit.keyword, hit.library_id, verdict.label) == (keyword, library, label)
    assert verdict.text[hit.text_start : hit.text_end] == hit.heard
    assert hit.time_start is not None
    assert 1.0 <= hit.time_start < len(segment.samples) / SAMPLE_RATE
    recheck = verdict.details["recheck"]
    assert recheck["plain_text"] == plain.text
    (correction,) = recheck["corrections"]
    assert correction["keyword"] == keyword
    assert correction["replaced"] in plain.text


@pytest.mark.parametrize(
    ("voice", "text", "unsure"),
    [
        # "play the" sounds like "piss off"; "weather" like "fucker".
        ("espeak:en-us", "I am learning to play the guitar.", {"play": "play", "the": "the"}),
        ("hibari", "The weather has been lovely all week.", {"weather": "weather"}),
    ],
)
async def test_neutral_speech_heard_again_stays_clean(
    recognizer: Recognizer, speech: SpeechCache, voice: str, text: str, unsure: dict[str, str]
) -> None:
    # Whisper was unsure of words that sound like keywords, so they are heard again with
    # those keywords as hotwords; the biased pass must not turn neutral speech into a hit.
    segment = segment_of(speech(text, voice))
    async with LocalEngine(recognizer=_Misheard(recognizer, unsure)) as engine:
        verdict = await engine.moderate(segment)
    assert verdict.details["recheck"]["rechecked_seconds"] > 0
    assert verdict.details["recheck"]["corrections"] == []
    assert not verdict.hit, verdict.text


class _BrokenSecondListen(Recognizer):
    """A plain pass that mishears; the hotword pass raises (a fake at our seam)."""

    def __init__(self, inner: Recognizer) -> None:
        super().__init__()
        self.inner = inner

    def load(self) -> faster_whisper.WhisperModel:
        return self.inner.load()

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        if hotwords:
            raise RuntimeError("hotword pass broke")
        return self.inner.transcribe_many(items)


async def test_a_failed_second_listen_keeps_the_plain_verdict(
    recognizer: Recognizer, speech: SpeechCache
) -> None:
    segment = segment_of(speech("Get free followers today.", "hibari"))
    broken = _BrokenSecondListen(_Misheard(recognizer, {"free": "three"}))
    async with LocalEngine(recognizer=broken) as engine:
        verdict = await engine.moderate(segment)
    assert verdict.outcome is Outcome.MODERATED
    assert verdict.details["recheck"]["error"] == "RuntimeError: hotword pass broke"
    assert verdict.text == verdict.details["recheck"]["plain_text"]
    assert not verdict.hit, verdict.text


class _SlowModel(Recognizer):
    """Takes a while over each pass, so batches overlap (a fake at our seam)."""

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        threading.Event().wait(0.2)
        return [Transcript("hello there", (), "en", 1.0, -0.2, 0.1, 1.1, 0.9, (), 1.0, 0.2)] * len(
            items
        )


async def test_segments_queued_behind_a_running_batch_wait_for_it(speech: SpeechCache) -> None:
    # With two workers, a segment whose speech is already in a batch another call is
    # recognising must wait for that batch, not start one of its own on an empty line.
    spoken = speech("Good morning everyone.", "hibari")
    segments = [segment_of(spoken, seq=n) for n in range(6)]
    async with LocalEngine(LocalEngineConfig(workers=2), recognizer=_SlowModel()) as engine:
        verdicts = await asyncio.gather(
            *(
                asyncio.create_task(engine.moderate(s), name=f"test.moderate[{s.seq}]")
                for s in segments
            )
        )
    assert [v.outcome for v in verdicts] == [Outcome.MODERATED] * 6, [v.reason for v in verdicts]
    assert {v.text for v in verdicts} == {"hello there"}


class _Listening(Recognizer):
    """Records the hotwords of each pass and hears a fixed sentence (a fake at our seam)."""

    def __init__(self) -> None:
        super().__init__()
        self.hotwords: list[str | None] = []

    @property
    def multilingual(self) -> bool:
        return False

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        self.hotwords.append(hotwords)
        text = "Get cheap by followers here."
        return [Transcript(text, (), "en", 1.0, -0.2, 0.1, 1.1, 0.95, (), 3.0, 0.1) for _ in items]


@pytest.mark.parametrize("hotwords", [False, True])
async def test_engine_hotwords_bias_the_first_pass_with_marked_libraries_only(
    speech: SpeechCache, hotwords: bool
) -> None:
    listening = _Listening()
    config = LocalEngineConfig(hotwords=hotwords, recheck=False)
    async with LocalEngine(config, recognizer=listening) as engine:
        verdict = await engine.moderate(segment_of(speech("Good morning everyone.", "hibari")))
    # The shipped library marks spam and sexual content: their keywords, nothing else.
    expected = engine.libraries.matcher.hotwords if hotwords else None
    assert listening.hotwords == [expected]
    assert expected is None or ("free followers" in expected and "idiot" not in expected)
    # The homophone "by followers" is the spam keyword "buy followers" either way.
    assert [k.keyword for k in verdict.keywords] == ["buy followers"]


class _Lost(Recognizer):
    """An English-only recogniser that could not follow what it heard (a fake at our seam)."""

    @property
    def multilingual(self) -> bool:
        return False

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        text = "do bissedIN idiot"  # unsure: log-probability -1.6, words at 0.3
        return [Transcript(text, (), "en", 1.0, -1.6, 0.2, 1.2, 0.3, (), 3.0, 0.1) for _ in items]


class _German(Recognizer):
    """A multilingual recogniser that hears German (no multilingual model is offline here)."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = 0

    @property
    def multilingual(self) -> bool:
        return True

    def transcribe_many(
        self,
        items: Sequence[tuple[Pcm, Sequence[SpeechRegion]]],
        *,
        hotwords: str | None = None,
    ) -> list[Transcript]:
        self.heard += len(items)
        text = "Du bist ein Idiot."
        return [Transcript(text, (), "de", 0.97, -0.3, 0.1, 1.1, 0.9, (), 3.0, 0.1) for _ in items]


async def test_speech_english_cannot_follow_goes_to_the_multilingual_model(
    speech: SpeechCache,
) -> None:
    german = _German()
    segment = segment_of(speech("Good morning everyone.", "hibari"))
    async with LocalEngine(recognizer=_Lost(), multilingual=german) as engine:
        verdict = await engine.moderate(segment)
    assert german.heard == 1
    # Heard in German, judged (the library's "idiot" is German too) and reported as such.
    assert verdict.text == "Du bist ein Idiot."
    assert verdict.unsupported == ("moaning", "screams", "non-English speech (de)")
    assert (verdict.hit, verdict.label) == (True, "Abuse")
    assert "other languages" in verdict.engine_version


async def test_without_a_multilingual_model_such_speech_is_reported_not_followed(
    speech: SpeechCache,
) -> None:
    segment = segment_of(speech("Good morning everyone.", "hibari"))
    async with LocalEngine(recognizer=_Lost()) as engine:
        verdict = await engine.moderate(segment)
    assert verdict.unsupported == ("moaning", "screams", UNINTELLIGIBLE)
    assert verdict.text == "do bissedIN idiot"


async def test_speech_english_follows_is_not_heard_again(speech: SpeechCache) -> None:
    german = _German()
    segment = segment_of(speech("Good morning everyone.", "hibari"))
    async with LocalEngine(recognizer=_Listening(), multilingual=german) as engine:
        verdict = await engine.moderate(segment)
    assert german.heard == 0
    assert verdict.text == "Get cheap by followers here."
