"""Keyword libraries: normalisation, word boundaries, ignore lists, limits, files, hot reload."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from streamguard.config.engine import LocalEngineConfig
from streamguard.engines.local.keywords import (
    MAX_BATCH,
    KeywordLibrary,
    KeywordMatcher,
    LibraryError,
    LibraryKind,
    LibrarySet,
    default_library_path,
    load_library_file,
)
from streamguard.engines.local.normalize import tokenize


def _fullwidth(text: str) -> str:
    """``text`` in full-width forms (as typed with an East Asian input method)."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def _matcher(*keywords: str, ignore: tuple[str, ...] = ()) -> KeywordMatcher:
    libraries = [KeywordLibrary(id="t", name="Test", label="Abuse", keywords=list(keywords))]
    if ignore:
        libraries.append(
            KeywordLibrary(
                id="i", name="Ignored", label="Normal", kind=LibraryKind.IGNORE, keywords=[*ignore]
            )
        )
    return KeywordMatcher(libraries)


def _heard(matcher: KeywordMatcher, text: str) -> list[tuple[str, str]]:
    return [(m.keyword, text[m.start : m.end]) for m in matcher.match(text)]


@pytest.mark.parametrize(
    ("text", "keyword", "heard"),
    [
        ("I will KILL you", "kill you", "KILL you"),
        ("k1ll y0u now", "kill you", "k1ll y0u"),
        ("what the f u c k", "fuck", "f u c k"),
        ("f.u.c.k off", "fuck", "f.u.c.k"),
        ("fuuuuuck this", "fuck", "fuuuuuck"),
        ("you a$$hole!", "asshole", "a$$hole"),
        ("sh!t happens", "shit", "sh!t"),
        (_fullwidth("FUCK"), "fuck", _fullwidth("FUCK")),
        ("fück", "fuck", "fück"),
        ("Idiöt!!!", "idiot", "Idiöt"),
        ("s3nd nud3s", "send nudes", "s3nd nud3s"),
        ("shut... up", "shut up", "shut... up"),
        ("b!tch", "bitch", "b!tch"),
        (_fullwidth("idiot"), "idiot", _fullwidth("idiot")),
        ("1d10t", "idiot", "1d10t"),
        # Whisper writes profanity starred out.
        ("what the f**k is this", "fuck", "f**k"),
        ("what the f*** is this", "fuck", "f***"),
        ("you f***ing idiot", "fucking", "f***ing"),
        ("total a**hole.", "asshole", "a**hole"),
        ("sh*t!", "shit", "sh*t"),
        ("f*u*c*k off", "fuck", "f*u*c*k"),
        ("an idiot*", "idiot", "idiot"),
    ],
)
def test_obfuscated_keywords_are_found_and_point_at_the_original_text(
    text: str, keyword: str, heard: str
) -> None:
    assert _heard(_matcher(keyword), text) == [(keyword, heard)]


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("the skill you need is patience", "kill you"),
        ("a classic assessment", "ass"),
        ("as far as I know", "ass"),
        ("Scunthorpe United", "cunt"),
        ("5 people and 100 friends", "speople"),
        ("the hell-o world", "hello"),
        ("a b", "ab"),
        ("f**", "fuck"),
        ("f***s", "fuck"),
        ("s**t", "fuck"),
        ("**uck", "fuck"),
    ],
)
def test_matching_respects_word_boundaries(text: str, keyword: str) -> None:
    assert _matcher(keyword).match(text) == []


def test_ignore_library_removes_its_phrases_before_flagging() -> None:
    matcher = _matcher("kill", ignore=("killing time", "kill time"))
    assert _heard(matcher, "we were just killing time") == []
    assert _heard(matcher, "I will kill time and then kill him") == [("kill", "kill")]


def test_hits_carry_their_library() -> None:
    threats = KeywordLibrary(id="threats", name="T", label="Abuse", sub_label="Threat", score=90)
    threats.add(["kill you"])
    ads = KeywordLibrary(id="ads", name="A", label="Ad", score=40)
    ads.add(["promo code"])
    matches = KeywordMatcher([threats, ads]).match("use promo code X or I kill you")
    assert {(m.library.id, m.library.label, m.keyword) for m in matches} == {
        ("threats", "Abuse", "kill you"),
        ("ads", "Ad", "promo code"),
    }


def test_default_library_flags_each_category_and_ignores_idioms() -> None:
    matcher = LibrarySet([]).matcher
    labels = {m.library.label for m in matcher.match("idiot, send nudes, free followers")}
    assert labels == {"Abuse", "Porn", "Ad"}
    assert [m.library.sub_label for m in matcher.match("I will find where you live")] == ["Threat"]
    assert matcher.match("you killed it on stage, we were killing time") == []
    assert matcher.match("the skill you need is patience") == []
    assert default_library_path().read_text().startswith("# streamguard default English")


# -- property tests -------------------------------------------------------------------------

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6)
LEET = {"o": "0", "e": "3", "a": "4", "s": "5", "t": "7", "i": "1"}


@given(st.lists(words, min_size=1, max_size=3), st.data())
def test_obfuscations_of_a_keyword_still_match(
    keyword_words: list[str], data: st.DataObject
) -> None:
    keyword = " ".join(keyword_words)
    obfuscated: list[str] = []
    for word in keyword_words:
        style = data.draw(st.sampled_from(["upper", "leet", "spaced", "repeat", "fullwidth"]))
        if style == "spaced" and obfuscated and " " in obfuscated[-1]:
            # Two spelled-out words in a row read as one ("f u c k y o u"): not this property.
            style = "upper"
        if style == "upper":
            obfuscated.append(word.upper())
        elif style == "leet":
            # A word made only of digits is a number, not leetspeak: keep its first letter.
            obfuscated.append(word[0] + "".join(LEET.get(c, c) for c in word[1:]))
        elif style == "spaced" and len(word) >= 3:
            obfuscated.append(" ".join(word))
        elif style == "repeat":
            index = data.draw(st.integers(0, len(word) - 1))
            obfuscated.append(word[:index] + word[index] * 4 + word[index + 1 :])
        elif style == "fullwidth":
            obfuscated.append(_fullwidth(word))
        else:
            obfuscated.append(word)
    text = "hey " + " ".join(obfuscated) + "!"
    matches = _matcher(keyword).match(text)
    assert [m.keyword for m in matches][:1] == [keyword]
    assert text[matches[0].start : matches[0].end] == " ".join(obfuscated)


@given(words, st.data())
def test_a_masked_word_matches_only_keywords_it_can_spell(word: str, data: st.DataObject) -> None:
    # Whisper keeps a masked word's first letter and stars some of the rest.
    starred = (
        data.draw(st.sets(st.integers(1, len(word) - 1), min_size=1)) if len(word) > 1 else set()
    )
    assume(starred)
    masked = word[0] + "".join("*" if n in starred else c for n, c in enumerate(word) if n)
    # One trailing "*" is read as a footnote mark, and single letters between single stars
    # as a word spelled out ("f*u*c*k"), not as masks.
    assume(not masked.endswith("*") or masked.endswith("**"))
    assume(not re.fullmatch(r"\w(\*\w){2,}", masked))
    other = data.draw(words)
    # The text around it holds "say" and "now": those words match there anyway.
    assume(not {word, other} & {"say", "now"})
    spells = len(other) == len(word) and all(
        n in starred or a == b for n, (a, b) in enumerate(zip(word, other, strict=True))
    )
    assert [m.keyword for m in _matcher(word).match(f"say {masked} now")] == [word]
    assert bool(_matcher(other).match(f"say {masked} now")) == spells


@given(words, words, words)
def test_a_keyword_inside_a_longer_word_does_not_match(
    prefix: str, keyword: str, suffix: str
) -> None:
    def collapsed(word: str) -> str:
        return "".join(char for char, _ in itertools.groupby(word))

    # "aa" + "ab" + "bb" is "ab" with repeated letters, which is meant to match.
    assume(collapsed(prefix + keyword + suffix) != collapsed(keyword))
    assume(keyword not in {"say", "now"})
    assert _matcher(keyword).match(f"say {prefix}{keyword}{suffix} now") == []


@given(st.text(max_size=60))
def test_token_spans_always_lie_inside_the_text(text: str) -> None:
    for token in tokenize(text):
        assert 0 <= token.start < token.end <= len(text)


# -- limits and files -----------------------------------------------------------------------


def test_keywords_longer_than_20_characters_are_refused_by_name() -> None:
    library = KeywordLibrary(id="lib", name="L", label="Custom")
    with pytest.raises(LibraryError) as caught:
        library.add(["fine", "a" * 21])
    assert "library 'lib': keywords[1]" in str(caught.value)
    assert "is 21 characters; at most 20" in str(caught.value)
    assert library.keywords == []


def test_batches_over_500_keywords_are_refused() -> None:
    library = KeywordLibrary(id="big", name="B", label="Custom")
    library.add([f"word{n}" for n in range(MAX_BATCH)])
    with pytest.raises(LibraryError, match="501 keywords in one batch; at most 500"):
        library.add([f"more{n}" for n in range(MAX_BATCH + 1)])
    assert len(library.keywords) == MAX_BATCH


def test_library_file_errors_name_file_library_and_keyword(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[library]]\nid = "x"\nname = "X"\nlabel = "Abuse"\nscore = 50\n'
        'keywords = ["ok"]\n[[library.batch]]\nkeywords = ["this keyword is far too long"]\n'
    )
    with pytest.raises(LibraryError) as caught:
        load_library_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert "library 'x': batch[0].keywords[0]" in message
    assert "'this keyword is far too long' is 28 characters" in message


NAMED = "id = 'x'\nname = 'X'\nlabel = 'A'\n"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (NAMED + "keywords = ['a']", "give exactly one of score and risk"),
        (NAMED + "risk = 'huge'\nkeywords = ['a']", "'huge' is not"),
        (NAMED + "score = 5\nkind = 'maybe'", "'maybe' is not 'flag'"),
        ("name = 'X'\nlabel = 'A'\nscore = 5", "library[0].id: required"),
        (NAMED + "score = 500", "500 is not within 0-100"),
        (NAMED + "score = 5\ncolour = 'red'", "colour: unknown key"),
        (NAMED + "score = 5\nkeywords = ['!!!']", "no letters or digits"),
    ],
)
def test_bad_library_tables_are_explained(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "lib.toml"
    path.write_text("[[library]]\n" + body + "\n")
    with pytest.raises(LibraryError, match=re.escape(problem)):
        load_library_file(path)


def test_duplicate_library_ids_across_files_are_refused(tmp_path: Path) -> None:
    for name in ("a.toml", "b.toml"):
        (tmp_path / name).write_text(
            '[[library]]\nid = "same"\nname = "S"\nlabel = "Custom"\nscore = 50\n'
        )
    with pytest.raises(LibraryError, match="id already used in"):
        LibrarySet([tmp_path / "a.toml", tmp_path / "b.toml"])


def _write_library(path: Path, keywords: str, mtime: int) -> None:
    path.write_text(
        f'[[library]]\nid = "room"\nname = "Room"\nlabel = "Custom"\nscore = 95\n'
        f"keywords = [{keywords}]\n"
    )
    # Explicit mtimes: a reload must not depend on the file system's clock resolution.
    os.utime(path, ns=(mtime, mtime))


def test_libraries_reload_on_change_and_keep_working_after_a_broken_edit(tmp_path: Path) -> None:
    path = tmp_path / "room.toml"
    _write_library(path, '"banana"', 1_000_000_000)
    libraries = LibrarySet([path])
    assert [m.keyword for m in libraries.matcher.match("banana and apple")] == ["banana"]
    assert libraries.refresh() is False

    _write_library(path, '"apple"', 2_000_000_000)
    assert libraries.refresh() is True
    assert [m.keyword for m in libraries.matcher.match("banana and apple")] == ["apple"]

    _write_library(path, '"apple", "' + "x" * 30 + '"', 3_000_000_000)
    assert libraries.refresh() is False
    assert [m.keyword for m in libraries.matcher.match("banana and apple")] == ["apple"]
    assert "at most 20" in str(libraries.errors[path])
    assert (libraries.reloads, libraries.reload_failures) == (1, 1)

    _write_library(path, '"cherry"', 4_000_000_000)
    assert libraries.refresh() is True
    assert libraries.errors == {}
    assert [m.keyword for m in libraries.matcher.match("cherry pie")] == ["cherry"]


def test_a_custom_library_adds_to_the_shipped_one_unless_it_replaces_it(tmp_path: Path) -> None:
    own = tmp_path / "room.toml"
    own.write_text(
        '[[library]]\nid = "room-rules"\nname = "Room rules"\nlabel = "Custom"\n'
        'score = 95\nkeywords = ["free followers"]\n',
        encoding="utf-8",
    )
    text = "get free followers or I will kill you"

    def hits(config: LocalEngineConfig) -> set[str]:
        return {m.library.id for m in LibrarySet.of(config).matcher.match(text)}

    assert hits(LocalEngineConfig(libraries=[own])) == {"room-rules", "en-spam", "en-threats"}
    replaced = LocalEngineConfig(libraries=[own], replace_default_library=True)
    assert hits(replaced) == {"room-rules"}
    assert hits(LocalEngineConfig()) == {"en-spam", "en-threats"}
    # Listing the shipped file as well does not load it twice (no duplicate library ids).
    listed = LocalEngineConfig(libraries=[default_library_path(), own])
    assert hits(listed) == {"room-rules", "en-spam", "en-threats"}
