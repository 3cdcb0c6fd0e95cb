"""Example libraries: sentences that mean what a label means, for the semantic layer.

A library file is TOML with one ``[[library]]`` table per library::

    [[library]]
    id = "en-sem-threat"          # unique across all loaded files
    name = "Veiled threats (English)"
    label = "Abuse"
    sub_label = "Threat"
    kind = "flag"                 # "flag": harmful examples; "benign": counter-examples
    score = 90                    # 0-100: the score a high semantic match carries
    block_score = 80              # with engine.semantic_block, a high match at least this Blocks
    examples = ["I know where you live."]   # fitted (at most 500 per library)
    held_out = ["..."]            # optional; never fitted: the evaluation set

Examples are at most ``MAX_EXAMPLE_CHARS`` characters. The shipped
``libraries/en-examples.toml`` is a starting point; users list their own files in
``engine.example_libraries`` (every profile's starting point) and in a profile's
``example_libraries`` (that profile only; ``ProfileExamples``), reloaded without a restart
like keyword libraries.

A profile's own files are held to the limits of Alibaba's custom libraries
(``shared/spec/batch-moderation.md``, part B) where they fit sentences: at most
``MAX_PROFILE_LIBRARIES`` (20, Alibaba's count of text vocabularies) libraries, at most
``MAX_BATCH`` (500, the consoles' batch) examples a library. Alibaba's 20 characters a
keyword and 100,000 keywords do not fit: an example is a sentence (``MAX_EXAMPLE_CHARS``,
300) and every one is embedded at start (~16 ms of CPU each), so a profile's files hold at
most ``MAX_PROFILE_EXAMPLES`` (2,000: about 30 s of CPU to embed) examples in all.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from streamguard.core.errors import ConfigProblem
from streamguard.engines.local.keywords import MAX_BATCH, LibraryError

__all__ = [
    "MAX_EXAMPLE_CHARS",
    "MAX_PROFILE_EXAMPLES",
    "MAX_PROFILE_LIBRARIES",
    "ExampleKind",
    "ExampleLibrary",
    "ExampleSet",
    "default_examples_path",
    "load_example_file",
]

MAX_EXAMPLE_CHARS = 300
"""One example is a sentence or two, not a document."""
MAX_PROFILE_LIBRARIES = 20
"""Libraries in a profile's own example files, at most (Alibaba: 20 text vocabularies)."""
MAX_PROFILE_EXAMPLES = 2000
"""Fitted examples in a profile's own example files, at most (each is embedded at start)."""

_KEYS = {"id", "name", "label", "sub_label", "kind", "score", "block_score", "examples", "held_out"}


class ExampleKind(StrEnum):
    FLAG = "flag"
    """Its examples are harmful: text near them is flagged with the library's label."""
    BENIGN = "benign"
    """Its examples are harmless text that shares words or topics with harmful text."""


@dataclass(frozen=True, slots=True)
class ExampleLibrary:
    """One example library: what a match means, its fitted examples and its held-out ones."""

    id: str
    name: str
    label: str
    sub_label: str
    kind: ExampleKind
    score: int
    block_score: int
    examples: tuple[str, ...]
    held_out: tuple[str, ...] = ()
    source: str = "<memory>"


def _texts(value: Any, where: str, problems: list[ConfigProblem]) -> tuple[str, ...]:
    if not isinstance(value, list):
        problems.append(ConfigProblem(where, "must be an array of strings"))
        return ()
    if len(value) > MAX_BATCH:
        problems.append(ConfigProblem(where, f"{len(value)} examples; at most {MAX_BATCH}"))
    clean: list[str] = []
    for index, raw in enumerate(value):
        text = " ".join(raw.split()) if isinstance(raw, str) else ""
        if not text:
            problems.append(ConfigProblem(f"{where}[{index}]", "must be a non-empty string"))
        elif len(text) > MAX_EXAMPLE_CHARS:
            problems.append(
                ConfigProblem(
                    f"{where}[{index}]", f"{len(text)} characters; at most {MAX_EXAMPLE_CHARS}"
                )
            )
        else:
            clean.append(text)
    return tuple(dict.fromkeys(clean))


def _score(table: dict[str, Any], key: str, default: int, where: str) -> int | ConfigProblem:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 101:
        return ConfigProblem(f"{where}.{key}", f"{value!r} is not an integer within 0-100")
    return value


def _library(table: Any, index: int, source: str) -> ExampleLibrary:
    where = f"{source}: library[{index}]"
    if not isinstance(table, dict):
        raise LibraryError([ConfigProblem(where, "must be a table")])
    problems = [ConfigProblem(f"{where}.{k}", "unknown key") for k in table if k not in _KEYS]
    for key in ("id", "name", "label"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            problems.append(ConfigProblem(f"{where}.{key}", "required, a non-empty string"))
    kind = table.get("kind", "flag")
    if kind not in {k.value for k in ExampleKind}:
        problems.append(ConfigProblem(f"{where}.kind", f"{kind!r} is not 'flag' or 'benign'"))
    scores = [_score(table, "score", 60, where), _score(table, "block_score", 80, where)]
    problems += [s for s in scores if isinstance(s, ConfigProblem)]
    examples = _texts(table.get("examples"), f"{where}.examples", problems)
    held_out = _texts(table.get("held_out", []), f"{where}.held_out", problems)
    if not examples and not any(p.path.startswith(f"{where}.examples") for p in problems):
        problems.append(ConfigProblem(f"{where}.examples", "needs at least one example"))
    if problems:
        raise LibraryError(problems)
    score, block_score = (int(s) for s in scores if not isinstance(s, ConfigProblem))
    return ExampleLibrary(
        id=table["id"],
        name=table["name"],
        label=table["label"],
        sub_label=str(table.get("sub_label", "")),
        kind=ExampleKind(kind),
        score=score,
        block_score=block_score,
        examples=examples,
        held_out=held_out,
        source=source,
    )


def load_example_file(path: Path) -> list[ExampleLibrary]:
    """Every library in one TOML file; ``LibraryError`` names the file, library and example."""
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
    return _checked([_library(t, i, source) for i, t in enumerate(tables)])


def _checked(libraries: Sequence[ExampleLibrary]) -> list[ExampleLibrary]:
    """``libraries``, when no two share an id."""
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
    return list(libraries)


def _balanced(libraries: list[ExampleLibrary]) -> list[ExampleLibrary]:
    """``libraries``, when their flag libraries have a benign one beside them."""
    kinds = {library.kind for library in libraries}
    if ExampleKind.FLAG in kinds and ExampleKind.BENIGN not in kinds:
        where = ", ".join(dict.fromkeys(library.source for library in libraries))
        reason = (
            "no benign library: with flag examples alone every text would be nearest to one "
            'of them (add counter-examples, kind = "benign")'
        )
        raise LibraryError([ConfigProblem(where, reason)])
    return libraries


def default_examples_path() -> Path:
    """The shipped English starting-point example libraries."""
    return Path(str(resources.files("streamguard.engines.local.libraries") / "en-examples.toml"))


def _limited(loaded: dict[Path, list[ExampleLibrary]], own: Sequence[Path]) -> None:
    """Raise ``LibraryError`` when the files in ``own`` break the profile limits."""
    mine = [lib for path in own for lib in loaded.get(path, [])]
    where = ", ".join(str(p) for p in own)
    problems = []
    if len(mine) > MAX_PROFILE_LIBRARIES:
        reason = f"{len(mine)} example libraries; at most {MAX_PROFILE_LIBRARIES}"
        problems.append(ConfigProblem(where, reason))
    examples = sum(len(lib.examples) for lib in mine)
    if examples > MAX_PROFILE_EXAMPLES:
        reason = f"{examples} examples in all; at most {MAX_PROFILE_EXAMPLES}"
        problems.append(ConfigProblem(where, reason))
    if problems:
        raise LibraryError(problems)


class ExampleSet:
    """The example libraries from a list of files, reloaded when a file changes.

    Construction loads every file and raises ``LibraryError`` on any problem; ``refresh()``
    reloads changed files and keeps the working libraries when an edit is broken (``errors``).
    The files in ``own`` (a profile's) are held to the profile limits, on load and reload.
    """

    def __init__(self, paths: Sequence[Path], *, own: Sequence[Path] = ()) -> None:
        self.paths = tuple(paths) if paths else (default_examples_path(),)
        self.own = tuple(own)
        self.errors: dict[Path, LibraryError] = {}
        self.reloads = 0
        self.reload_failures = 0
        self._stamps = {path: _stamp(path) for path in self.paths}
        self._loaded = {path: load_example_file(path) for path in self.paths}
        _limited(self._loaded, self.own)
        self.libraries = _balanced(
            _checked([lib for libs in self._loaded.values() for lib in libs])
        )

    def refresh(self) -> bool:
        """Reload the files that changed since the last look; whether the libraries changed."""
        changed = False
        for path in self.paths:
            stamp = _stamp(path)
            if stamp == self._stamps[path]:
                continue
            self._stamps[path] = stamp
            try:
                candidate = {**self._loaded, path: load_example_file(path)}
                _limited(candidate, self.own)
                libraries = _balanced(
                    _checked([lib for libs in candidate.values() for lib in libs])
                )
            except LibraryError as exc:
                self.errors[path] = exc
                self.reload_failures += 1
                continue
            self._loaded, self.libraries = candidate, libraries
            self.errors.pop(path, None)
            self.reloads += 1
            changed = True
        return changed


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size
