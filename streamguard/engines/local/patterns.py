"""Keyword patterns: regular expressions over a text's words, for what no word list holds.

A phone number, or a name and a street address, is not a fixed phrase; a library's
``patterns`` find them. A pattern is a Python regular expression matched, case-insensitively,
against the *pattern text* of a transcript: its words (``normalize.tokenize``) as written, one
space between them, punctuation dropped — "Call 555-213-4567!" reads "Call 555 213 4567".
``(?-i:...)`` makes part of a pattern case-sensitive (a name: ``(?-i:[A-Z][a-z]+)``). A hit
points back at the characters of the original text its words came from.

Patterns are written by operators, not users: a pattern is limited to
``MAX_PATTERN_CHARS`` characters and is matched against texts of bounded length, but a
badly written pattern can still be slow (Python's ``re`` has no timeout); keep quantifiers
bounded (``{0,3}``, not ``*``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from streamguard.engines.local.normalize import Token

__all__ = ["MAX_PATTERN_CHARS", "KeywordPattern", "PatternText", "compile_pattern"]

MAX_PATTERN_CHARS = 600
"""A pattern is a line or two of regular expression, not a program."""


@dataclass(frozen=True, slots=True)
class KeywordPattern:
    """A named regular expression; ``name`` stands for the keyword in hits."""

    name: str
    regex: re.Pattern[str]


def compile_pattern(name: str, source: str) -> KeywordPattern:
    """``source`` compiled case-insensitively; ``ValueError`` saying why it cannot be used."""
    if not name.strip():
        raise ValueError("name must not be empty")
    if len(source) > MAX_PATTERN_CHARS:
        raise ValueError(f"regex is {len(source)} characters; at most {MAX_PATTERN_CHARS}")
    try:
        regex = re.compile(source, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"regex {source!r} is not valid: {exc}") from exc
    if regex.fullmatch(""):
        raise ValueError(f"regex {source!r} matches empty text")
    return KeywordPattern(" ".join(name.split()), regex)


class PatternText:
    """The words of a text, one space apart, and where each character came from."""

    def __init__(self, text: str, tokens: Sequence[Token]) -> None:
        parts: list[str] = []
        self._origin: list[int] = []
        for token in tokens:
            if parts:
                parts.append(" ")
                self._origin.append(token.start)
            word = text[token.start : token.end]
            parts.append(word)
            self._origin.extend(range(token.start, token.start + len(word)))
        self.text = "".join(parts)

    def find(self, pattern: KeywordPattern) -> list[tuple[int, int]]:
        """Character spans in the original text of every non-overlapping hit of ``pattern``."""
        spans = []
        for hit in pattern.regex.finditer(self.text):
            if hit.end() > hit.start():
                spans.append((self._origin[hit.start()], self._origin[hit.end() - 1] + 1))
        return spans
