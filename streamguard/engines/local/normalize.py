"""Text normalisation shared by transcripts and keywords, so both are compared alike.

A text becomes a list of ``Token``s: words folded for case, accents and full-width forms
(NFKD, combining marks dropped, casefold), leetspeak read back as letters ("k1ll" → "kill"),
spaced-out letters joined ("f u c k" → "fuck"), punctuation dropped, and starred-out
words as whisper writes profanity ("f**k", "a**hole") kept as masks that match any keyword
word of their length with the letters they show. Repeated letters are
compared run by run: a token's ``key`` has every run of one letter collapsed to a single
letter and ``runs`` remembers how long each run was, so "fuuuuck" matches "fuck" while "as"
does not match "ass" (see ``Token.covers``). Words that sound alike (``HOMOPHONES``:
"by", "buy" and "bye"; "u" and "you") are read every way, so "by followers" matches "buy
followers" as speech recognition or a hurried typist may write it. Every token keeps the
character span it came from in the original text, so a match points back at what was
actually written or heard.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["HOMOPHONES", "Token", "edit_distance", "fold", "sound_key", "tokenize"]

_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s"}
# "1" and "|" stand for "i" or "l" ("k1ll", "1ame"): a token holding them has both readings.
_AMBIGUOUS = {"1": "il", "|": "il", "!": "i"}
_MAX_READINGS = 8
"""A token with many ambiguous characters is read at most this many ways (keeps matching fast)."""

HOMOPHONES: tuple[tuple[str, ...], ...] = (
    ("by", "buy", "bye"),
    ("for", "four"),
    ("to", "too", "two"),
    ("u", "you", "ya", "yu"),
    ("ur", "your"),
    ("r", "are"),
    ("no", "know"),
    ("nose", "knows"),
    ("where", "wear"),
    ("die", "dye"),
    ("dead", "ded"),
    ("sell", "cell"),
    ("site", "sight"),
    ("heroin", "heroine"),
    ("pills", "pils"),
    ("nudes", "noods"),
    ("kill", "kil"),
)
"""Words read as each other: each word of a group is also every other word of its group.
Kept to words that speech recognition or chat spelling confuse *and* that keywords use;
a wider table makes more ordinary sentences match phrases."""

_SOUNDS_ALIKE = {word: group for group in HOMOPHONES for word in group}

_WORD = re.compile(r"(?:[^\W_]|[@$!|*])+")
# "f*u*c*k" inside one word is spelled out; "f**k", "f***ing", "sh*t" are masked (below).
_STARRED_LETTERS = re.compile(r"[^\W_](?:\*[^\W_]){2,}")
# Separators allowed between spaced-out letters: "f u c k", "f.u.c.k", "f-u-c-k", "f*u*c*k".
_SPACED_GAP = re.compile(r"[\s.\-_*~+,]{1,3}")
_MIN_SPACED = 3
"""Fewer single letters in a row are ordinary words ("a", "I"), not spelled-out ones."""


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` folded for case, accents and full-width forms, and where each character came from.

    The second element maps every character of the folded text to its index in ``text``.
    """
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = char if char.isascii() and not char.isupper() else _fold_char(char)
        out.append(folded)
        origin.extend([index] * len(folded))
    return "".join(out), origin


@dataclass(frozen=True, slots=True)
class Token:
    """One normalised word: its readings, letter runs, and its span in the original text."""

    keys: tuple[str, ...]
    """Run-collapsed readings ("fuuck" → "fuck"; "k1ll" → "kil" via "i", "lll"... via "l")."""
    runs: tuple[tuple[int, ...], ...]
    """For each reading, the length of each collapsed run (same order as the key's letters)."""
    start: int
    end: int
    """Character span in the original text."""
    masked: bool = False
    """A word with letters starred out, as whisper writes profanity ("f**k", "f***ing"):
    its one key is the word as written, each "*" standing for one letter."""

    def covers(self, key: str, runs: tuple[int, ...]) -> bool:
        """Whether this token can be the keyword token ``key`` with letter runs ``runs``.

        A doubled letter in the keyword must be at least doubled here ("ass" needs "ss"); a
        single letter may be repeated any number of times ("fuuuck" is "fuck"). A masked
        token covers a keyword word of its length whose letters agree where it shows them.
        """
        if self.masked:
            spelled = "".join(char * count for char, count in zip(key, runs, strict=True))
            mask = self.keys[0]
            return len(spelled) == len(mask) and all(
                shown in ("*", char) for shown, char in zip(mask, spelled, strict=True)
            )
        for own_key, own_runs in zip(self.keys, self.runs, strict=True):
            if own_key == key and all(
                have >= min(need, 2) for have, need in zip(own_runs, runs, strict=True)
            ):
                return True
        return False


def _collapse(word: str) -> tuple[str, tuple[int, ...]]:
    groups = [(char, len(list(run))) for char, run in itertools.groupby(word)]
    return "".join(c for c, _ in groups), tuple(n for _, n in groups)


def _readings(word: str) -> list[str]:
    """Every letter reading of a word: leetspeak mapped only when the word has letters,
    then the homophones of the word as written (``HOMOPHONES``)."""
    if word in _SOUNDS_ALIKE:
        return list(dict.fromkeys((word, *_SOUNDS_ALIKE[word])))
    if not any(c.isalpha() for c in word):
        return [word]
    options: list[str] = []
    for char in word:
        if char in _AMBIGUOUS:
            options.append(_AMBIGUOUS[char])
        else:
            options.append(_LEET.get(char, char))
    readings = ["".join(p) for p in itertools.islice(itertools.product(*options), _MAX_READINGS)]
    return list(dict.fromkeys(readings))


@functools.lru_cache(maxsize=65536)
def _word_readings(word: str) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    # Cached: conversation repeats a small vocabulary, so most words are seen before.
    collapsed = [_collapse(reading) for reading in _readings(word)]
    return tuple(k for k, _ in collapsed), tuple(r for _, r in collapsed)


def _token(word: str, start: int, end: int) -> Token:
    if "*" in word:
        return Token(keys=(word,), runs=((1,) * len(word),), start=start, end=end, masked=True)
    keys, runs = _word_readings(word)
    return Token(keys=keys, runs=runs, start=start, end=end)


def tokenize(text: str) -> list[Token]:
    """The normalised words of ``text``, in order, each with its span in ``text``."""
    folded, origin = fold(text)
    words: list[tuple[str, int, int]] = []
    for match in _WORD.finditer(folded):
        # "!" and "|" are letters only inside a word ("b!tch"); at its edges they are
        # punctuation, as a leading "*" is (a mask starts with the word's first letter).
        word = match.group()
        left = len(word) - len(word.lstrip("!|*"))
        word = word[left:].rstrip("!|")
        if word.endswith("*") and not word.endswith("**"):
            word = word[:-1]  # one trailing "*" is a footnote mark; "f***" is a mask
        if not any(c.isalnum() for c in word):
            continue
        start = match.start() + left
        end = start + len(word)
        if _STARRED_LETTERS.fullmatch(word):
            word = word.replace("*", "")
        words.append((word, start, end))
    tokens: list[Token] = []
    i = 0
    while i < len(words):
        j = i
        while (
            j + 1 < len(words)
            and len(words[j][0]) == 1
            and len(words[j + 1][0]) == 1
            and _SPACED_GAP.fullmatch(folded, words[j][2], words[j + 1][1]) is not None
        ):
            j += 1
        if j - i + 1 >= _MIN_SPACED and len(words[i][0]) == 1:
            word = "".join(w for w, _, _ in words[i : j + 1])
            start, end = words[i][1], words[j][2]
            i = j + 1
        else:
            word, start, end = words[i]
            i += 1
        tokens.append(_token(word, origin[start], origin[end - 1] + 1))
    return tokens


# Spellings of one sound, then sounds speech recognition confuses (voiced/voiceless pairs,
# "th"/"f" as in "three"/"free"). Vowels, "h", "w" and "y" carry little of what tiny.en
# gets wrong between near words and are dropped.
_DIGRAPHS = (("ph", "f"), ("th", "f"), ("ck", "k"), ("sh", "s"), ("ch", "s"), ("qu", "k"))
_SOUNDS = str.maketrans("bdgvzcqx", "ptkfskks", "aeiouyhw")


@functools.lru_cache(maxsize=65536)
def sound_key(word: str) -> str:
    """A rough consonant skeleton of a normalised word, for near-miss detection.

    "porn", "poured" and "party" become "prn", "prt", "prt"; "free" and "three" both "fr".
    Equal or close keys mean the words may sound alike, never that they are the same word.
    """
    for spelling, sound in _DIGRAPHS:
        word = word.replace(spelling, sound)
    return _collapse(word.translate(_SOUNDS))[0]


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            )
        if min(current) > limit:
            return limit + 1
        previous = current
    return min(previous[-1], limit + 1)
