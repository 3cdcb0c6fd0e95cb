"""Each profile's example libraries and the classifier fitted on them.

A profile judges text with the engine's example libraries (``engine.example_libraries``,
empty = the shipped ones) plus its own files (``example_libraries`` of the profile), or
with its own files alone (``replace_default_examples = true``), as keyword libraries are
added to or replaced. Each distinct list of files is loaded once (``ExampleSet``, reloaded
when a file changes, a broken edit keeping the version that worked) and each distinct
content is fitted once: classifiers are kept by a digest of the libraries they were fitted
on, so profiles naming the same examples share one. Example vectors are kept by text, so
an example shared by several profiles, or kept across an edit, is embedded once.

Every method blocks (embedding, fitting): call them on a worker thread. A profile not
prepared beforehand is loaded and fitted on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from streamguard.config.policy import ProfileConfig
from streamguard.core.errors import ConfigError, ConfigProblem
from streamguard.engines.local.embedder import Embedder, Vectors
from streamguard.engines.local.examples import ExampleLibrary, ExampleSet, default_examples_path
from streamguard.engines.local.keywords import LibraryError
from streamguard.engines.local.semantic import SemanticIndex

__all__ = ["ProfileExamples", "example_problems", "examples_digest", "profile_files"]

log = logging.getLogger("streamguard.engines.local.engine")

Files = tuple[Path, ...]


def examples_digest(libraries: Sequence[ExampleLibrary]) -> str:
    """SHA-256 of what a classifier is fitted on (and what its findings report)."""
    content = [
        [
            lib.id,
            lib.name,
            lib.label,
            lib.sub_label,
            lib.kind.value,
            lib.score,
            lib.block_score,
            Path(lib.source).name,
            list(lib.examples),
        ]
        for lib in libraries
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def profile_files(engine_files: Files, profile: ProfileConfig | None) -> tuple[Files, Files]:
    """The example files ``profile`` judges with, and which of them are its own."""
    if profile is None or not profile.example_libraries:
        return engine_files, ()
    own = tuple(dict.fromkeys(profile.example_libraries))
    if profile.replace_default_examples:
        return own, own
    return tuple(dict.fromkeys((*engine_files, *own))), own


def _load(
    wanted: Mapping[str, tuple[Files, Files]], known: set[Files]
) -> tuple[dict[Files, ExampleSet], list[ConfigProblem]]:
    """The example sets of ``wanted`` (profile name → files, own files) not ``known`` yet,
    and what is wrong with them, named by the profile's key."""
    fresh: dict[Files, ExampleSet] = {}
    problems: list[ConfigProblem] = []
    for name, (files, own) in wanted.items():
        if files in known or files in fresh:
            continue
        try:
            fresh[files] = ExampleSet(files, own=own)
        except LibraryError as exc:
            where = f"profiles.{name}.example_libraries"
            problems += [ConfigProblem(f"{where}: {p.path}", p.reason) for p in exc.problems]
    return fresh, problems


def example_problems(
    engine_files: Sequence[Path], profiles: Mapping[str, ProfileConfig]
) -> list[ConfigProblem]:
    """What is wrong with the example files of ``engine_files`` and of every profile, each
    named by its key (files are loaded, nothing is embedded: for ``check-config``)."""
    try:
        engine = ExampleSet(engine_files)
    except LibraryError as exc:
        return [
            ConfigProblem(f"engine.example_libraries: {p.path}", p.reason) for p in exc.problems
        ]
    wanted = {name: profile_files(engine.paths, profile) for name, profile in profiles.items()}
    return _load(wanted, {engine.paths})[1]


class ProfileExamples:
    """The example libraries of every profile in use, and their fitted classifiers."""

    def __init__(self, engine_files: Sequence[Path], embedder: Embedder) -> None:
        self.engine_files: Files = tuple(engine_files) or (default_examples_path(),)
        self.embedder = embedder
        self.default = ExampleSet(self.engine_files)
        """The engine's example libraries (segments, and profiles without their own)."""
        self._sets: dict[Files, ExampleSet] = {self.engine_files: self.default}
        self._fitted: dict[Files, SemanticIndex] = {}
        self._by_digest: dict[str, SemanticIndex] = {}
        self._vectors: dict[str, Vectors] = {}
        self._build = threading.Lock()
        self.fit_seconds: dict[str, float] = {}
        """CPU seconds each classifier took, embedding included, by content digest."""

    def files(self, profile: ProfileConfig | None) -> tuple[Files, Files]:
        """The example files ``profile`` judges with, and which of them are its own."""
        return profile_files(self.engine_files, profile)

    def index(self, profile: ProfileConfig | None = None) -> SemanticIndex:
        """The classifier ``profile`` judges with (the engine's for None)."""
        files, own = self.files(profile)
        found = self._fitted.get(files)
        if found is not None:
            return found
        with self._build:
            if files not in self._sets:
                self._sets[files] = ExampleSet(files, own=own)
            return self._fit(files)

    @property
    def errors(self) -> list[LibraryError]:
        """Broken example files, each once (the previous versions are in use)."""
        found: dict[Path, LibraryError] = {}
        for examples in list(self._sets.values()):
            found |= examples.errors
        return list(found.values())

    @property
    def vectors(self) -> dict[str, Vectors]:
        """The examples' vectors, by text (a copy)."""
        return dict(self._vectors)

    def prepare(self, profiles: Mapping[str, ProfileConfig]) -> None:
        """Load every profile's files and fit its classifier now; drop what no profile uses.

        Raises ``ConfigError`` naming ``profiles.NAME.example_libraries`` and the file,
        library and example when a file a profile newly names is broken; then nothing
        changes. Files already in use that broke since keep their working version.
        """
        wanted = {name: self.files(profile) for name, profile in profiles.items()}
        fresh, problems = _load(wanted, set(self._sets))
        if problems:
            raise ConfigError(problems)
        with self._build:
            self._sets |= fresh
            for files, _ in [(self.engine_files, ()), *wanted.values()]:
                self._fit(files)
            used = {self.engine_files, *(files for files, _ in wanted.values())}
            self._keep(used)

    def refresh(self) -> bool:
        """Reload changed files and refit what changed; whether anything did."""
        changed = False
        with self._build:
            for files, examples in list(self._sets.items()):
                if examples.refresh():
                    changed = True
                    self._fit(files)  # the old classifier serves until the new one is fitted
            if changed:
                self._keep(set(self._sets))
        return changed

    def _fit(self, files: Files) -> SemanticIndex:
        """(Holding ``_build``.) The classifier of ``files``' libraries, shared by digest."""
        libraries = self._sets[files].libraries
        digest = examples_digest(libraries)
        index = self._by_digest.get(digest)
        if index is None:
            started = time.process_time()
            index = SemanticIndex.build(libraries, self.embedder, cache=self._vectors)
            self.fit_seconds[digest] = time.process_time() - started
            self._by_digest[digest] = index
            log.info(
                "example libraries %s fitted (%d libraries) in %.2f s of CPU",
                ", ".join(map(str, files)),
                len(libraries),
                self.fit_seconds[digest],
            )
        self._fitted[files] = index
        return index

    def _keep(self, used: set[Files]) -> None:
        """(Holding ``_build``.) Forget the files, classifiers and vectors none of ``used``
        needs."""
        self._sets = {f: s for f, s in self._sets.items() if f in used}
        self._fitted = {f: i for f, i in self._fitted.items() if f in used}
        live = {examples_digest(s.libraries) for s in self._sets.values()}
        self._by_digest = {d: i for d, i in self._by_digest.items() if d in live}
        self.fit_seconds = {d: t for d, t in self.fit_seconds.items() if d in live}
        texts = {t for s in self._sets.values() for lib in s.libraries for t in lib.examples}
        self._vectors = {t: v for t, v in self._vectors.items() if t in texts}
