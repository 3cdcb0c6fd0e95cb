"""The second listen's pieces: sound keys, near misses, and accepting only confirmed keywords."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamguard.engines.gate import SpeechRegion
from streamguard.engines.local.keywords import KeywordLibrary, KeywordMatcher
from streamguard.engines.local.normalize import edit_distance, sound_key
from streamguard.engines.local.recheck import Suspect, merge, spans, suspects
from streamguard.engines.local.recognizer import Transcript, Word

MATCHER = KeywordMatcher(
    [
        KeywordLibrary(id="spam", name="Spam", label="Ad", keywords=["free followers"]),
        KeywordLibrary(id="sex", name="Sexual", label="Porn", keywords=["porn"]),
        KeywordLibrary(id="abuse", name="Abuse", label="Abuse", keywords=["idiot"]),
    ]
)


def _transcript(*words: tuple[str, float, float, float]) -> Transcript:
    """A transcript of (text, start, end, probability) words, as the recogniser builds it."""
    built: list[Word] = []
    text = ""
    for spoken, start, end, probability in words:
        text += " " if text else ""
        built.append(Word(spoken, start, end, probability, len(text), len(text) + len(spoken)))
        text += spoken
    return Transcript(text, tuple(built), "en", 1.0, -0.3, 0.1, 1.2, 0.7, (), 3.0, 0.2)


PLAIN = _transcript(
    ("Get", 1.0, 1.2, 0.9),
    ("three", 1.2, 1.5, 0.4),
    ("followers", 1.5, 2.0, 0.8),
    ("today.", 2.0, 2.4, 0.9),
)


def test_sound_keys_keep_consonants_and_merge_confusable_sounds() -> None:
    assert sound_key("three") == sound_key("free") == "fr"
    assert sound_key("porn") == "prn"
    assert sound_key("poured") == sound_key("party") == "prt"
    assert sound_key("picnic") != sound_key("dickpic")


@given(st.text("abcdefg", max_size=8), st.text("abcdefg", max_size=8), st.integers(0, 4))
def test_edit_distance_is_symmetric_and_capped(a: str, b: str, limit: int) -> None:
    distance = edit_distance(a, b, limit)
    assert distance == edit_distance(b, a, limit)
    assert 0 <= distance <= limit + 1
    assert (distance == 0) == (a == b)


def test_words_that_sound_like_a_keyword_are_near_misses_not_hits() -> None:
    text = "Get three followers today."
    assert MATCHER.match(text) == []
    (miss,) = MATCHER.near_misses(text)
    assert (miss.keyword, text[miss.start : miss.end]) == ("free followers", "three followers")
    # A keyword heard outright is a hit, never also a near miss.
    assert [m.keyword for m in MATCHER.match("get free followers")] == ["free followers"]
    assert MATCHER.near_misses("get free followers") == []
    # Sounds must be close: "picnic" and "the river" are not near anything here.
    assert MATCHER.near_misses("We are planning a picnic by the river.") == []


def test_only_uncertain_near_misses_are_suspects_and_only_their_time_is_heard_again() -> None:
    (suspect,) = suspects(PLAIN, MATCHER, threshold=0.5)
    assert suspect == Suspect("free followers", "spam", 1.2, 2.0)
    # Whisper was sure of every word: nothing to hear again.
    assert suspects(PLAIN, MATCHER, threshold=0.3) == []
    regions = (SpeechRegion(0.8, 2.6),)
    assert spans([suspect], regions, context=0.5) == (SpeechRegion(0.8, 2.5),)
    assert spans([], regions, context=0.5) == ()


def test_a_confirmed_keyword_replaces_the_words_it_was_misheard_as() -> None:
    biased = _transcript(
        ("get", 1.0, 1.2, 0.5),
        ("free", 1.2, 1.5, 0.2),
        ("followers", 1.5, 2.0, 0.6),
    )
    merged, (correction,) = merge(PLAIN, biased, MATCHER, suspects(PLAIN, MATCHER, 0.5), confirm=0)
    assert merged.text == "Get free followers today."
    assert [m.keyword for m in MATCHER.match(merged.text)] == ["free followers"]
    assert (correction.keyword, correction.replaced) == ("free followers", "three followers")
    assert merged.seconds == PLAIN.seconds + biased.seconds
    for word in merged.words:
        assert merged.text[word.text_start : word.text_end] == word.text


def test_the_second_listen_cannot_add_a_keyword_nobody_nearly_heard() -> None:
    found = suspects(PLAIN, MATCHER, 0.5)
    elsewhere = _transcript(("free", 3.0, 3.3, 0.9), ("followers", 3.3, 3.8, 0.9))
    other_keyword = _transcript(("porn", 1.2, 1.5, 0.9), ("followers", 1.5, 2.0, 0.9))
    loop_tail = _transcript(("free", 2.4, 2.4, 0.9), ("followers", 2.4, 2.4, 0.9))
    unsure = _transcript(("free", 1.2, 1.5, 0.05), ("followers", 1.5, 2.0, 0.9))
    for biased, confirm in ((elsewhere, 0), (other_keyword, 0), (loop_tail, 0), (unsure, 0.1)):
        merged, corrections = merge(PLAIN, biased, MATCHER, found, confirm=confirm)
        assert corrections == []
        assert merged is PLAIN
