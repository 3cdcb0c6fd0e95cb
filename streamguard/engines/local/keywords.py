r"""Keyword libraries (the consoles' "custom dictionaries") and matching transcripts against them.

A library file is TOML with one ``[[library]]`` table per library::

    [[library]]
    id = "en-abuse"              # unique across all loaded files
    name = "Abuse (English)"
    label = "Abuse"              # Porn, Abuse, Ad, Illegal, Custom, ...
    sub_label = "Insult"
    kind = "flag"                # "flag" raises hits; "ignore" removes its words first
    score = 70                   # 0-100, or: risk = "high" | "medium" | "low"
    block_score = 80             # hits scoring at least this suggest Block, others Review
    keywords = ["idiot", "shut up"]   # the first batch (at most 500)
    gap = 2                      # optional: up to 2 other words may stand between the
                                 # words of a phrase ("ugly pig" hits "ugly fat pig")
    hotwords = true              # optional: offer these keywords to whisper as hotwords
                                 # (only with engine.hotwords; see recognizer)
    patterns = [                 # optional: regular expressions (see ``patterns``)
        {name = "phone number", regex = '\b\d{3} \d{3} \d{4}\b'},
    ]

    [[library.batch]]            # further batches, at most 500 keywords each
    keywords = ["moron"]

Keywords are at most 20 characters. Matching is on whole normalised words (see
``normalize``): "the skill you need" does not hit "kill you". A gapped phrase still needs
its words in order, and its first and last words are the hit's span.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.errors import ConfigError, ConfigProblem
from streamguard.engines.local.normalize import Token, edit_distance, sound_key, tokenize
from streamguard.engines.local.patterns import KeywordPattern, PatternText, compile_pattern

__all__ = [
    "MAX_BATCH",
    "MAX_GAP",
    "MAX_HOTWORDS",
    "MAX_KEYWORD_CHARS",
    "NEGATIONS",
    "RISK_SCORES",
    "KeywordLibrary",
    "KeywordMatch",
    "KeywordMatcher",
    "LibraryError",
    "LibraryKind",
    "LibrarySet",
    "NearMiss",
    "default_library_path",
    "load_library_file",
]

log = logging.getLogger(__name__)

MAX_KEYWORD_CHARS = 20
"""The consoles' limit on one keyword's length."""
MAX_BATCH = 500
"""The consoles' limit on keywords added in one call (here: one batch of a library file)."""
RISK_SCORES = {"high": 90, "medium": 60, "low": 30}
"""The score a library gets when it states a risk instead of a score."""
MAX_GAP = 5
"""Words that may stand between two words of a gapped phrase, at most."""
NEGATIONS = frozenset({"not", "never", "no", "t", "nt", "hardly"})
"""Words a gapped phrase never skips: "you are not pathetic" is not "you are pathetic".
("t" is what remains of "n't" once "isn't" is split at the apostrophe.)"""
MAX_HOTWORDS = 40
"""Keywords offered to whisper as hotwords at most: a longer prompt biases all it hears."""

_LIBRARY_KEYS = {
    "id",
    "name",
    "label",
    "sub_label",
    "kind",
    "score",
    "risk",
    "block_score",
    "gap",
    "hotwords",
}
_LIBRARY_KEYS_WITH_BATCHES = _LIBRARY_KEYS | {"keywords", "batch", "patterns"}


class LibraryError(ConfigError):
    """A keyword library (file, batch or keyword) breaks a rule; ``problems`` says where."""


class LibraryKind(StrEnum):
    FLAG = "flag"
    """Its keywords raise hits."""
    IGNORE = "ignore"
    """Its keywords are removed from the text before flag libraries are matched."""


@dataclass
class KeywordLibrary:
    """One library: what a hit on it means, and its keywords (added in batches)."""

    id: str
    name: str
    label: str
    sub_label: str = ""
    kind: LibraryKind = LibraryKind.FLAG
    score: int = 60
    block_score: int = 80
    """A hit scoring at least this suggests Block; lower scores suggest Review."""
    source: str = "<memory>"
    """Where the library came from, for error messages."""
    keywords: list[str] = field(default_factory=list)
    gap: int = 0
    """Other words that may stand between two words of a phrase (0: contiguous)."""
    hotwords: bool = False
    """Whether its keywords are offered to whisper as hotwords (with ``engine.hotwords``)."""
    patterns: list[KeywordPattern] = field(default_factory=list)
    """Regular expressions over the words of a text (``patterns``), hits like keywords'."""

    def __post_init__(self) -> None:
        problems = []
        if not self.id.strip():
            problems.append(self._problem("id", "must not be empty"))
        if not 0 <= self.gap <= MAX_GAP:
            problems.append(self._problem("gap", f"{self.gap} is not within 0-{MAX_GAP}"))
        if not 0 <= self.score <= 100:
            problems.append(self._problem("score", f"{self.score} is not within 0-100"))
        if not 0 <= self.block_score <= 101:
            problems.append(self._problem("block_score", f"{self.block_score} is not 0-101"))
        if problems:
            raise LibraryError(problems)
        initial, self.keywords = self.keywords, []
        if initial:
            self.add(initial)

    def _problem(self, where: str, reason: str) -> ConfigProblem:
        return ConfigProblem(f"{self.source}: library {self.id!r}: {where}", reason)

    def add(self, batch: Sequence[str], *, where: str = "keywords") -> None:
        """Add one batch of keywords; raises ``LibraryError`` naming every bad keyword.

        A batch holds at most ``MAX_BATCH`` keywords of at most ``MAX_KEYWORD_CHARS``
        characters each, and each must contain a letter or digit. Nothing is added when any
        keyword is refused.
        """
        problems = []
        if len(batch) > MAX_BATCH:
            problems.append(
                self._problem(where, f"{len(batch)} keywords in one batch; at most {MAX_BATCH}")
            )
        clean: list[str] = []
        for index, raw in enumerate(batch):
            if not isinstance(raw, str):
                problems.append(self._problem(f"{where}[{index}]", f"{raw!r} is not a string"))
                continue
            keyword = " ".join(raw.split())
            if len(keyword) > MAX_KEYWORD_CHARS:
                problems.append(
                    self._problem(
                        f"{where}[{index}]",
                        f"keyword {keyword!r} is {len(keyword)} characters; "
                        f"at most {MAX_KEYWORD_CHARS}",
                    )
                )
            elif not tokenize(keyword):
                problems.append(
                    self._problem(f"{where}[{index}]", f"keyword {raw!r} has no letters or digits")
                )
            else:
                clean.append(keyword)
        if problems:
            raise LibraryError(problems)
        self.keywords.extend(k for k in clean if k not in self.keywords)


def _library_from_table(table: Any, index: int, source: str) -> KeywordLibrary:
    where = f"{source}: library[{index}]"
    if not isinstance(table, dict):
        raise LibraryError([ConfigProblem(where, "must be a table")])
    problems = [
        ConfigProblem(f"{where}.{key}", "unknown key")
        for key in table
        if key not in _LIBRARY_KEYS_WITH_BATCHES
    ]
    for key in ("id", "name", "label"):
        if not isinstance(table.get(key), str):
            problems.append(ConfigProblem(f"{where}.{key}", "required, a string"))
    kind = table.get("kind", "flag")
    if kind not in {k.value for k in LibraryKind}:
        problems.append(ConfigProblem(f"{where}.kind", f"{kind!r} is not 'flag' or 'ignore'"))
    score = table.get("score")
    risk = table.get("risk")
    if (score is None) == (risk is None):
        problems.append(ConfigProblem(f"{where}.score", "give exactly one of score and risk"))
    elif risk is not None and risk not in RISK_SCORES:
        problems.append(ConfigProblem(f"{where}.risk", f"{risk!r} is not high, medium or low"))
    elif score is not None and (isinstance(score, bool) or not isinstance(score, int)):
        problems.append(ConfigProblem(f"{where}.score", f"{score!r} is not an integer"))
    block_score = table.get("block_score", 80)
    if isinstance(block_score, bool) or not isinstance(block_score, int):
        problems.append(ConfigProblem(f"{where}.block_score", f"{block_score!r} is not an integer"))
    gap, hotwords, patterns = _options(table, where, problems)
    batches = _batches(table, where, problems)
    if problems:
        raise LibraryError(problems)
    library = KeywordLibrary(
        id=table["id"],
        name=table["name"],
        label=table["label"],
        sub_label=str(table.get("sub_label", "")),
        kind=LibraryKind(kind),
        score=RISK_SCORES[risk] if risk is not None else int(str(score)),
        block_score=block_score,
        source=source,
        gap=gap,
        hotwords=hotwords,
        patterns=patterns,
    )
    for name, batch in batches:
        library.add(batch, where=name)
    return library


def _batches(
    table: dict[str, Any], where: str, problems: list[ConfigProblem]
) -> list[tuple[str, Any]]:
    """A library table's keyword batches, by where they stand; problems appended."""
    batches: list[tuple[str, Any]] = []
    if "keywords" in table:
        batches.append(("keywords", table["keywords"]))
    extra = table.get("batch", [])
    if not isinstance(extra, list):
        problems.append(ConfigProblem(f"{where}.batch", "must be an array of tables"))
        extra = []
    for number, batch in enumerate(extra):
        if not isinstance(batch, dict) or set(batch) != {"keywords"}:
            problems.append(
                ConfigProblem(f"{where}.batch[{number}]", "must be a table with only 'keywords'")
            )
        else:
            batches.append((f"batch[{number}].keywords", batch["keywords"]))
    for name, batch in batches:
        if not isinstance(batch, list):
            problems.append(ConfigProblem(f"{where}.{name}", "must be an array of strings"))
    return batches


def _options(
    table: dict[str, Any], where: str, problems: list[ConfigProblem]
) -> tuple[int, bool, list[KeywordPattern]]:
    """A library table's ``gap``, ``hotwords`` and ``patterns``; problems appended."""
    gap = table.get("gap", 0)
    if isinstance(gap, bool) or not isinstance(gap, int) or not 0 <= gap <= MAX_GAP:
        problems.append(ConfigProblem(f"{where}.gap", f"{gap!r} is not an integer 0-{MAX_GAP}"))
        gap = 0
    hotwords = table.get("hotwords", False)
    if not isinstance(hotwords, bool):
        problems.append(ConfigProblem(f"{where}.hotwords", f"{hotwords!r} is not true or false"))
        hotwords = False
    raw = table.get("patterns", [])
    if not isinstance(raw, list):
        problems.append(ConfigProblem(f"{where}.patterns", "must be an array of tables"))
        raw = []
    if len(raw) > MAX_BATCH:
        problems.append(ConfigProblem(f"{where}.patterns", f"{len(raw)}; at most {MAX_BATCH}"))
    patterns = []
    for index, item in enumerate(raw):
        here = f"{where}.patterns[{index}]"
        if not isinstance(item, dict) or set(item) != {"name", "regex"}:
            problems.append(ConfigProblem(here, "must be a table with only 'name' and 'regex'"))
        elif not isinstance(item["name"], str) or not isinstance(item["regex"], str):
            problems.append(ConfigProblem(here, "'name' and 'regex' must be strings"))
        else:
            try:
                patterns.append(compile_pattern(item["name"], item["regex"]))
            except ValueError as exc:
                problems.append(ConfigProblem(here, str(exc)))
    return gap, hotwords, patterns


def load_library_file(path: Path) -> list[KeywordLibrary]:
    """Every library in one TOML file; ``LibraryError`` names the file, library and keyword."""
    source = str(path)
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise LibraryError([ConfigProblem(source, f"cannot read: {exc.strerror}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise LibraryError([ConfigProblem(source, f"not valid TOML: {exc}")]) from exc
    unknown = [ConfigProblem(f"{source}: {k}", "unknown key") for k in document if k != "library"]
    tables = document.get("library", [])
    if unknown or not isinstance(tables, list) or not tables:
        raise LibraryError(unknown or [ConfigProblem(source, "no [[library]] tables")])
    return [_library_from_table(t, i, source) for i, t in enumerate(tables)]


def default_library_path() -> Path:
    """The shipped English starting-point library."""
    return Path(str(resources.files("streamguard.engines.local.libraries") / "en-default.toml"))


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """A keyword found in a text: which library, and the span of the text it covers."""

    keyword: str
    library: KeywordLibrary
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class NearMiss:
    """Words of a text that sound like a keyword without being it ("three followers")."""

    keyword: str
    library: KeywordLibrary
    start: int
    end: int
    """Character span of the words in the text."""


def near_miss_distance(sound: str) -> int:
    """How many sound edits a keyword's consonant skeleton tolerates (none for short ones)."""
    # Looser limits on long skeletons made ordinary phrases near misses ("the river" of
    # "free followers"); one edit keeps "send news" near "send nudes" and "poured" near "porn".
    return 0 if len(sound) <= 2 else 1


MIN_NEAR_MISS_SOUND = 2
"""Keywords with a shorter consonant skeleton ("idiot" → "t") sound like too many words to
have near misses."""


@dataclass(frozen=True, slots=True)
class _Phrase:
    keys: tuple[str, ...]
    runs: tuple[tuple[int, ...], ...]
    keyword: str
    library: KeywordLibrary

    def end(self, tokens: Sequence[Token], first: int) -> int | None:
        """One past the last token of this phrase found from ``tokens[first]``, or None.

        Each next word is looked for in the ``library.gap`` tokens after the word before;
        the nearest one that fits is taken (a later word may need a nearer one: all are
        tried, at most ``gap + 1`` per word).
        """
        return self._rest(tokens, first, 0)

    def _rest(self, tokens: Sequence[Token], at: int, word: int) -> int | None:
        if at >= len(tokens) or not tokens[at].covers(self.keys[word], self.runs[word]):
            return None
        if word + 1 == len(self.keys):
            return at + 1
        for following in range(at + 1, min(at + 2 + self.library.gap, len(tokens))):
            end = self._rest(tokens, following, word + 1)
            if end is not None:
                return end
            if tokens[following].keys[0] in NEGATIONS:
                break  # the next word may not lie beyond a negation
        return None


def _phrase(keyword: str, library: KeywordLibrary) -> _Phrase:
    tokens = tokenize(keyword)
    # A keyword is written by us in plain letters: its first reading is the one meant.
    return _Phrase(
        keys=tuple(t.keys[0] for t in tokens),
        runs=tuple(t.runs[0] for t in tokens),
        keyword=keyword,
        library=library,
    )


class _Index:
    """Phrases by their first word's key: matching costs a dict lookup per word reading."""

    def __init__(self, phrases: Iterable[_Phrase]) -> None:
        self._by_first: dict[str, list[_Phrase]] = {}
        for phrase in phrases:
            self._by_first.setdefault(phrase.keys[0], []).append(phrase)
        self._all = [p for group in self._by_first.values() for p in group]

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def find(self, tokens: Sequence[Token]) -> list[tuple[int, int, _Phrase]]:
        """(first token, last token + 1, phrase) for every phrase found in ``tokens``."""
        found = []
        for i, token in enumerate(tokens):
            if token.masked:
                # Rare ("f**k"): any phrase may be meant, so all are tried.
                candidates = {id(p): p for p in self._all}
            else:
                candidates = {id(p): p for k in token.keys for p in self._by_first.get(k, ())}
            for phrase in candidates.values():
                end = phrase.end(tokens, i)
                if end is not None:
                    found.append((i, end, phrase))
        return found


class KeywordMatcher:
    """Libraries compiled for matching; immutable, so a reload swaps in a new one."""

    def __init__(self, libraries: Sequence[KeywordLibrary]) -> None:
        seen: dict[str, str] = {}
        problems = []
        for library in libraries:
            if library.id in seen:
                problems.append(
                    ConfigProblem(
                        f"{library.source}: library {library.id!r}",
                        f"id already used in {seen[library.id]}",
                    )
                )
            seen[library.id] = library.source
        if problems:
            raise LibraryError(problems)
        self.libraries = tuple(libraries)
        self._ignore = _Index(
            _phrase(k, lib)
            for lib in libraries
            if lib.kind is LibraryKind.IGNORE
            for k in lib.keywords
        )
        flag = [
            _phrase(k, lib)
            for lib in libraries
            if lib.kind is LibraryKind.FLAG
            for k in lib.keywords
        ]
        self._flag = _Index(flag)
        self._patterns = [
            (pattern, lib)
            for lib in libraries
            if lib.kind is LibraryKind.FLAG
            for pattern in lib.patterns
        ]
        self._sounds = [
            (sound, len(p.keys), p)
            for p in flag
            if len(sound := "".join(sound_key(k) for k in p.keys)) >= MIN_NEAR_MISS_SOUND
        ]
        self._near_cache: dict[tuple[str, int], tuple[_Phrase, ...]] = {}

    @property
    def keyword_count(self) -> int:
        """How many keywords all libraries hold together."""
        return sum(len(lib.keywords) + len(lib.patterns) for lib in self.libraries)

    @property
    def hotwords(self) -> str:
        """The keywords of flag libraries marked ``hotwords``, for whisper: at most
        ``MAX_HOTWORDS``, in library order, comma-separated; empty when none is marked.

        Whole keywords, not their words: "send nudes" biases towards the phrase, while
        "send" alone would bias towards an everyday word."""
        keywords = [
            keyword
            for lib in self.libraries
            if lib.kind is LibraryKind.FLAG and lib.hotwords
            for keyword in lib.keywords
        ]
        return ", ".join(list(dict.fromkeys(keywords))[:MAX_HOTWORDS])

    def _sounding_like(self, sound: str, words: int) -> tuple[_Phrase, ...]:
        key = (sound, words)
        found = self._near_cache.get(key)
        if found is None:
            found = tuple(
                phrase
                for own, length, phrase in self._sounds
                if length == words
                and edit_distance(sound, own, limit := near_miss_distance(own)) <= limit
            )
            if len(self._near_cache) < 65536:
                # Conversation repeats its words: most windows were seen before.
                self._near_cache[key] = found
        return found

    def near_misses(self, text: str) -> list[NearMiss]:
        """Runs of words in ``text`` that sound like a flag keyword that ``match`` did not find.

        Sound is compared on consonant skeletons (``normalize.sound_key``), over windows of
        as many words as the keyword has; short keywords must sound exactly alike. A near
        miss is a reason to listen again, never a hit by itself.
        """
        tokens = tokenize(text)
        found = {(m.library.id, m.keyword) for m in self.match(text)}
        sounds = [sound_key(t.keys[0]) for t in tokens]
        misses: dict[tuple[str, str], NearMiss] = {}
        longest = max((length for _, length, _ in self._sounds), default=0)
        for first in range(len(tokens)):
            for end in range(first + 1, min(first + longest, len(tokens)) + 1):
                sound = "".join(sounds[first:end])
                if not sound:
                    continue
                for phrase in self._sounding_like(sound, end - first):
                    key = (phrase.library.id, phrase.keyword)
                    if key not in found and key not in misses:
                        misses[key] = NearMiss(
                            phrase.keyword, phrase.library, tokens[first].start, tokens[end - 1].end
                        )
        return list(misses.values())

    def match(self, text: str) -> list[KeywordMatch]:
        """Every flag-library keyword in ``text`` once ignore-library words are removed.

        Spans are character offsets in ``text``; overlapping hits from different keywords
        are all reported (a moderator sees each reason).
        """
        tokens = tokenize(text)
        if self._ignore:
            ignored: set[int] = set()
            for first, end, _ in self._ignore.find(tokens):
                ignored.update(range(first, end))
            tokens = [t for n, t in enumerate(tokens) if n not in ignored]
        found = [
            KeywordMatch(
                keyword=phrase.keyword,
                library=phrase.library,
                start=tokens[first].start,
                end=tokens[end - 1].end,
            )
            for first, end, phrase in self._flag.find(tokens)
        ]
        if self._patterns and tokens:
            words = PatternText(text, tokens)
            for pattern, library in self._patterns:
                found.extend(
                    KeywordMatch(pattern.name, library, start, end)
                    for start, end in words.find(pattern)
                )
        return found


@dataclass(frozen=True, slots=True)
class _FileStamp:
    mtime_ns: int
    size: int


class LibrarySet:
    """The libraries from a list of files, reloaded when a file changes.

    Construction loads every file and raises ``LibraryError`` on any problem. Afterwards,
    ``refresh()`` reloads changed files; a broken edit keeps the libraries that were working
    and is reported in ``errors`` (and the log) until the file is fixed.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths) if paths else (default_library_path(),)
        self.errors: dict[Path, LibraryError] = {}
        self.reloads = 0
        self.reload_failures = 0
        self._stamps = {path: self._stamp(path) for path in self.paths}
        self._loaded = {path: load_library_file(path) for path in self.paths}
        self.matcher = KeywordMatcher([lib for libs in self._loaded.values() for lib in libs])

    @classmethod
    def of(cls, config: LocalEngineConfig) -> LibrarySet:
        """The config's libraries: the shipped default first and then ``libraries``, or only
        ``libraries`` with ``replace_default_library``."""
        default = default_library_path()
        own = [p for p in config.libraries if p.resolve() != default.resolve()]
        return cls(own if config.replace_default_library and own else [default, *own])

    @staticmethod
    def _stamp(path: Path) -> _FileStamp | None:
        try:
            status = os.stat(path)
        except OSError:
            return None
        return _FileStamp(status.st_mtime_ns, status.st_size)

    def refresh(self) -> bool:
        """Reload the files that changed since the last look; whether the libraries changed."""
        changed = False
        for path in self.paths:
            stamp = self._stamp(path)
            if stamp == self._stamps[path]:
                continue
            self._stamps[path] = stamp
            try:
                libraries = load_library_file(path)
                candidate = {**self._loaded, path: libraries}
                matcher = KeywordMatcher([lib for libs in candidate.values() for lib in libs])
            except LibraryError as exc:
                self.errors[path] = exc
                self.reload_failures += 1
                log.error("keyword library %s not reloaded, keeping the old one: %s", path, exc)
                continue
            self._loaded = candidate
            self.matcher = matcher
            self.errors.pop(path, None)
            self.reloads += 1
            changed = True
            log.info("keyword library %s reloaded (%d libraries)", path, len(libraries))
        return changed
