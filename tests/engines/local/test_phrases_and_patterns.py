"""Keyword libraries beyond fixed phrases: gapped phrases, homophones, patterns, hotwords,
and the shipped categories they serve (threats, self-harm, hate, drugs, doxxing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamguard.engines.local.keywords import (
    MAX_HOTWORDS,
    KeywordLibrary,
    KeywordMatcher,
    LibraryError,
    LibraryKind,
    LibrarySet,
    load_library_file,
)
from streamguard.engines.local.patterns import MAX_PATTERN_CHARS, compile_pattern


def _heard(matcher: KeywordMatcher, text: str) -> list[tuple[str, str]]:
    return [(m.keyword, text[m.start : m.end]) for m in matcher.match(text)]


def _gapped(gap: int, *keywords: str) -> KeywordMatcher:
    return KeywordMatcher(
        [KeywordLibrary(id="g", name="G", label="Abuse", keywords=list(keywords), gap=gap)]
    )


@pytest.mark.parametrize(
    ("gap", "text", "heard"),
    [
        (0, "you ugly pig", [("ugly pig", "ugly pig")]),
        (0, "you ugly fat pig", []),
        (1, "you ugly fat pig", [("ugly pig", "ugly fat pig")]),
        (2, "you ugly, fat, smelly pig", [("ugly pig", "ugly, fat, smelly pig")]),
        (2, "ugly as a fat pig", []),  # three words between: beyond the gap
        (2, "pig ugly", []),  # the words keep their order
        (2, "you are so pathetic", [("you are pathetic", "you are so pathetic")]),
        (2, "you are not pathetic", []),  # a gap never skips a negation
        (2, "you aren't really pathetic", []),
        (2, "you are never pathetic", []),
    ],
)
def test_gapped_phrases_allow_words_between_but_not_a_negation(
    gap: int, text: str, heard: list[tuple[str, str]]
) -> None:
    assert _heard(_gapped(gap, "ugly pig", "you are pathetic"), text) == heard


def test_a_gapped_phrase_takes_a_later_word_when_the_nearest_does_not_lead_on() -> None:
    # "know" then "where" twice: the first "where" is not followed by "you live".
    matcher = _gapped(2, "know where you live")
    text = "I know where, yes where you live"
    assert _heard(matcher, text) == [("know where you live", "know where, yes where you live")]


@pytest.mark.parametrize(
    ("text", "keyword", "heard"),
    [
        ("by followers here", "buy followers", "by followers"),
        ("bye followers", "buy followers", "bye followers"),
        ("i will kill u", "kill you", "kill u"),
        ("I no where you live", "know where you live", "no where you live"),
        ("going too kill you", "going to kill you", "going too kill you"),
        ("send noods", "send nudes", "send noods"),
    ],
)
def test_homophones_read_alike(text: str, keyword: str, heard: str) -> None:
    matcher = _gapped(0, keyword)
    assert _heard(matcher, text) == [(keyword, heard)]


def test_homophones_do_not_loosen_other_words() -> None:
    assert _heard(_gapped(0, "buy followers"), "bay followers") == []
    assert _heard(_gapped(0, "kill you"), "skill you") == []


def _patterned(name: str, regex: str) -> KeywordMatcher:
    library = KeywordLibrary(
        id="p", name="P", label="Illegal", patterns=[compile_pattern(name, regex)]
    )
    return KeywordMatcher([library])


@pytest.mark.parametrize(
    ("text", "heard"),
    [
        ("call 555-213-4567 tonight", "555-213-4567"),
        ("call (555) 213 4567", "555) 213 4567"),
        ("spam 555.213.4567!", "555.213.4567"),
    ],
)
def test_patterns_match_the_words_as_written_and_point_at_the_original(
    text: str, heard: str
) -> None:
    matcher = _patterned("phone", r"\b\d{3} \d{3} \d{4}\b")
    assert _heard(matcher, text) == [("phone", heard)]


def test_patterns_are_case_insensitive_unless_told() -> None:
    street = _patterned("street", r"\d+ \w+ street\b")
    assert _heard(street, "at 42 Oak STREET") == [("street", "42 Oak STREET")]
    name = _patterned("name", r"(?-i:[A-Z][a-z]+ [A-Z][a-z]+) lives")
    assert _heard(name, "John Miller lives there") == [("name", "John Miller lives")]
    assert _heard(name, "john miller lives there") == []


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("{name = 'x', regex = '(unclosed'}", "is not valid"),
        ("{name = 'x', regex = 'a*'}", "matches empty text"),
        (f"{{name = 'x', regex = '{'a' * (MAX_PATTERN_CHARS + 1)}'}}", "at most"),
        ("{name = '', regex = 'a'}", "name must not be empty"),
        ("{name = 'x', regex = 'a', flags = 'i'}", "only 'name' and 'regex'"),
        ("{name = 'x', regex = 3}", "must be strings"),
        ("'a regex'", "only 'name' and 'regex'"),
    ],
)
def test_bad_patterns_are_refused_by_library_and_index(
    tmp_path: Path, pattern: str, problem: str
) -> None:
    path = tmp_path / "lib.toml"
    path.write_text(
        '[[library]]\nid = "p"\nname = "P"\nlabel = "Illegal"\nscore = 60\n'
        f"patterns = [{pattern}]\n"
    )
    with pytest.raises(LibraryError) as caught:
        load_library_file(path)
    assert f"{path}: library[0].patterns[0]" in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("gap", "problem"), [("-1", "not an integer 0-5"), ("6", "0-5"), ("true", "0-5")]
)
def test_a_bad_gap_is_refused(tmp_path: Path, gap: str, problem: str) -> None:
    path = tmp_path / "lib.toml"
    path.write_text(
        f'[[library]]\nid = "g"\nname = "G"\nlabel = "Abuse"\nscore = 60\ngap = {gap}\n'
        'keywords = ["a b"]\n'
    )
    with pytest.raises(LibraryError) as caught:
        load_library_file(path)
    assert "library[0].gap" in str(caught.value)
    assert problem in str(caught.value)


def test_hotwords_are_whole_keywords_of_marked_flag_libraries_only() -> None:
    marked = KeywordLibrary(
        id="m", name="M", label="Ad", keywords=["free followers", "promo code"], hotwords=True
    )
    plain = KeywordLibrary(id="p", name="P", label="Abuse", keywords=["idiot"])
    ignored = KeywordLibrary(
        id="i", name="I", label="Normal", kind=LibraryKind.IGNORE, keywords=["x"], hotwords=True
    )
    assert KeywordMatcher([marked, plain, ignored]).hotwords == "free followers, promo code"
    assert KeywordMatcher([plain]).hotwords == ""
    many = KeywordLibrary(
        id="n", name="N", label="Ad", keywords=[f"w{n}" for n in range(100)], hotwords=True
    )
    assert len(KeywordMatcher([many]).hotwords.split(", ")) == MAX_HOTWORDS


SHIPPED = [
    ("I know where you live.", "Threat"),
    ("I know exactly where you live, see you soon", "Threat"),
    ("You better watch your back.", "Threat"),
    ("Go hang yourself, loser.", "SelfHarm"),
    ("Just drink bleach already.", "SelfHarm"),
    ("Immigrants are a plague on this country.", "Hate"),
    ("Go back to your country.", "Hate"),
    ("Selling weed, half ounce for fifty.", "Drugs"),
    ("Percocet for cheap, hit me up.", "Drugs"),
    ("Anyone want some shrooms?", "Drugs"),
    ("Jane Doe, 12 Elm Street, go say hi.", "Doxxing"),
    ("She lives at 18 Maple Avenue apartment 3.", "Doxxing"),
    ("Spam his phone, 555-213-4567.", "Doxxing"),
    ("His number is 0 7 7 0 0 9 0 0 1 2 3.", "Doxxing"),
    ("You ugly fat pig.", "Insult"),
    ("Get cheap by followers here.", "Spam"),
    ("If you ban me again I'm going to break your jaw.", "Threat"),
    ("I'll put you in the hospital.", "Threat"),
    ("Next time you won't see me coming.", "Threat"),
    ("honestly just off yourself", "SelfHarm"),
    ("those people breed like rats", "Hate"),
    ("selling xannies and vicodin", "Drugs"),
    ("sub for sub, anyone?", "Spam"),
    ("Heil Hitler, brothers.", "Extremism"),
    ("The shooter was a hero.", "Extremism"),
    ("ISIS fighters are the only true believers.", "Extremism"),
    ("Breivik did nothing wrong.", "Extremism"),
    ("We should blow up the federal building.", "Extremism"),
    ("Politicians like him should be hanged.", "Extremism"),
]


@pytest.mark.parametrize(("text", "sub_label"), SHIPPED)
def test_the_shipped_library_finds_each_new_category(text: str, sub_label: str) -> None:
    matcher = LibrarySet([]).matcher
    assert sub_label in {m.library.sub_label for m in matcher.match(text)}


@pytest.mark.parametrize(
    "text",
    [
        "I'm going to kill it tonight on stage.",
        "We're going to kill the boss this time.",
        "The police seized two kilos of cocaine at the port.",
        "My doctor prescribed Xanax for my anxiety.",
        "The venue is at 221 Baker Street, doors open at seven.",
        "My high score is 5552134567 points.",
        "Ten nine eight seven six five four three two one, go!",
        "You are not pathetic, you did your best.",
        "Talk to someone you trust if you feel like hurting yourself.",
        "Doxxing is against the rules of this server.",
        "Women's football is getting huge audiences now.",
        # near misses of the third round's entries
        "Don't break your neck on those icy stairs.",
        "The crash put him in the hospital for a week.",
        "Show off yourself a little, you earned it.",
        "Rabbits breed like crazy in spring.",
        "I'm selling my old bike and some chocolate bars.",
        "Subscribe for more videos like this one.",
        "The history teacher explained how Hitler rose to power.",
        "Police said the shooter was a former soldier.",
        "The man planned to blow up a federal building, prosecutors said.",
        "The gunman is in custody, the police said.",
        "Politicians should be held to account by voters.",
    ],
)
def test_the_shipped_library_leaves_near_misses_alone(text: str) -> None:
    assert LibrarySet([]).matcher.match(text) == []
