"""Judging text with both signals: keyword libraries and the semantic layer.

``TextModerator`` is shared by the local engine (a segment's transcript, with the tail of
the previous segment), ``streamguard moderate-text`` and ``POST /v1/moderate/text``. Every
method but ``rules`` blocks (embedding, fitting): call it on a worker thread. If the
semantic layer fails on a text, the keyword judgement stands and ``semantic_error`` says
why; nothing is reported clean because of it that keywords would have caught.

Embedding is the cost (tens of milliseconds a text, against a tenth of one for keywords), so
a text is embedded only when its meaning can change the answer (``wants_meaning``): not when
a keyword hit already decides it (a semantic-only hit suggests Review, which a keyword hit
already does, unless ``semantic_block``), not when it has fewer than ``semantic_min_words``
words ("gg", "lol"), and not twice: vectors of recent texts are kept (``MAX_CACHED``), since
chat repeats itself.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from streamguard.config.engine import LocalEngineConfig
from streamguard.config.policy import ProfileConfig
from streamguard.engines.local.context import Tail
from streamguard.engines.local.embedder import E5Embedder, Embedder, SharedBatches, Vectors
from streamguard.engines.local.examples import ExampleKind, ExampleSet
from streamguard.engines.local.judge import Judgement, Rules, judge
from streamguard.engines.local.keywords import KeywordMatch, LibraryError, LibrarySet
from streamguard.engines.local.profile_examples import ProfileExamples
from streamguard.engines.local.semantic import SemanticFinding

__all__ = ["MAX_CACHED", "TextModerator"]

log = logging.getLogger("streamguard.engines.local.engine")

MAX_CACHED = 4096
"""Vectors of judged texts kept (the least recently used goes first): ~1.5 KiB each."""


class TextModerator:
    """Keyword libraries plus, when ``config.semantic``, example libraries and a classifier.

    ``libraries`` may be given (the engine shares its own); ``embedder`` too (tests give
    fixed vectors). ``load()`` embeds the examples and fits the classifier; judging loads
    on first use otherwise.
    """

    def __init__(
        self,
        config: LocalEngineConfig,
        *,
        libraries: LibrarySet | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.rules = Rules.of(config)
        self.min_words = config.semantic_min_words
        self.summed = config.semantic_summed
        self.libraries = libraries or LibrarySet.of(config)
        self.embedder: Embedder | None = None
        self.profiles: ProfileExamples | None = None
        """Each profile's example libraries and classifier (None: semantic layer off)."""
        self._shared: SharedBatches | None = None
        if config.semantic:
            self.embedder = embedder or E5Embedder()
            self.profiles = ProfileExamples(config.example_libraries, self.embedder)
            self._shared = SharedBatches(self.embedder)
        self._judged: OrderedDict[str, Vectors] = OrderedDict()
        self._judged_lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        """Texts by what the semantic layer did with them: ``embedded``, ``cached``,
        ``decided by keywords``, ``too short`` (for benchmarks and tests)."""

    @property
    def semantic(self) -> bool:
        """Whether the semantic layer is on."""
        return self.profiles is not None

    @property
    def examples(self) -> ExampleSet | None:
        """The engine's example libraries (None: semantic layer off)."""
        return self.profiles.default if self.profiles is not None else None

    @property
    def errors(self) -> list[LibraryError]:
        """Broken example library files (the previous versions are in use)."""
        return self.profiles.errors if self.profiles is not None else []

    def load(self, profiles: Mapping[str, ProfileConfig] | None = None) -> None:
        """Embed the examples and fit the classifiers: the engine's, and each of
        ``profiles``' (a few seconds for the shipped examples). ``ConfigError`` names the
        profile's key when a file it names is broken."""
        if self.profiles is not None:
            self.profiles.prepare(profiles or {})

    def refresh_examples(self) -> bool:
        """Reload changed example files and refit; whether anything changed."""
        return self.profiles is not None and self.profiles.refresh()

    def reload_examples(self, profiles: Mapping[str, ProfileConfig]) -> None:
        """For a config reload: reload changed example files (a broken edit keeps the
        working version), then load and fit what ``profiles`` newly name. ``ConfigError``
        (naming the profile's key) when a newly named file is broken; the classifiers in
        use stay. Old classifiers serve until new ones are fitted."""
        if self.profiles is not None:
            self.profiles.refresh()
            self.profiles.prepare(profiles)

    def judge_many(
        self, texts: Sequence[str], profile: ProfileConfig | None = None
    ) -> list[Judgement]:
        """Each text judged on its own, in order.

        With a ``profile``, its ``ignored_words`` and the labels it switches off
        (``enabled = false``) do not count, as the policy would drop them.
        """
        matcher = self.libraries.matcher
        matches = [matcher.match(text) for text in texts]
        if profile is not None:
            matches = [_allowed(profile, found, None)[0] for found in matches]
        wanted = [self.wants_meaning(t, m, profile) for t, m in zip(texts, matches, strict=True)]
        findings, error = self._find([t for t, w in zip(texts, wanted, strict=True) if w], profile)
        found = iter(findings)
        judged = []
        for text, keywords, meant in zip(texts, matches, wanted, strict=True):
            finding = next(found) if meant else None
            if profile is not None:
                keywords, finding = _allowed(profile, keywords, finding)
            judgement = judge(text, keywords, finding, self.rules)
            judged.append(_with_error(judgement, error if meant else None))
        return judged

    def wants_meaning(
        self, text: str, keywords: Sequence[KeywordMatch], profile: ProfileConfig | None = None
    ) -> bool:
        """Whether ``text``, with these keyword hits, is worth embedding (counted)."""
        if not self.semantic:
            return False
        reason = None
        if len(text.split()) < self.min_words:
            reason = "too short"
        elif not self._flags_count(profile):
            reason = "labels switched off"
        elif keywords and (not self.rules.block or any(_blocks(m) for m in keywords)):
            reason = "decided by keywords"
        if reason is not None:
            with self._judged_lock:
                self.counts[reason] += 1
        return reason is None

    def _flags_count(self, profile: ProfileConfig | None) -> bool:
        """Whether a semantic finding can count under ``profile``: not when it switches
        off the label of every flag library it judges with (``_allowed`` drops them)."""
        if profile is None or self.profiles is None:
            return True
        try:
            libraries = self.profiles.index(profile).libraries
        except Exception:  # _find reports why the layer failed
            return True
        labels = {lib.label for lib in libraries if lib.kind is ExampleKind.FLAG}
        return any(profile.labels.get(label, profile.other_labels).enabled for label in labels)

    def judge_after(self, text: str, tail: Tail | None) -> Judgement:
        """``text`` judged together with ``tail``, the end of the text before it.

        Keyword hits wholly inside the tail were reported with the text before and are not
        counted again; one that spans the cut is counted here, its span clipped to ``text``.
        A semantic finding of the joined text counts when it beats ``text``'s own and the
        text before was not already flagged with that library.
        """
        if tail is None or not tail.text or not text.strip():
            return self.judge_many([text])[0]
        prefix = len(tail.text) + 1
        joined = f"{tail.text} {text}"
        matches = [_shifted(m, prefix) for m in self.libraries.matcher.match(joined)]
        kept = [m for m in matches if m is not None]
        if not self.wants_meaning(text, kept):
            return judge(text, kept, None, self.rules)
        (alone, together), error = self._find([text, joined])
        finding = alone
        if (
            together is not None
            and (alone is None or together.score > alone.score)
            and together.library.id != tail.flagged_library
        ):
            finding = dataclasses.replace(together, context=True)
        return _with_error(judge(text, kept, finding, self.rules), error)

    def _find(
        self, texts: Sequence[str], profile: ProfileConfig | None = None
    ) -> tuple[list[SemanticFinding | None], str | None]:
        nothing: list[SemanticFinding | None] = [None] * len(texts)
        if self.profiles is None or self.embedder is None or not texts:
            return nothing, None
        try:
            index = self.profiles.index(profile)
            wanted = [n for n, t in enumerate(texts) if t.strip()]
            if not wanted:
                return nothing, None
            shared = self._shared or self.embedder
            vectors = self._vectors([texts[n] for n in wanted], shared)
            found = index.find(vectors, summed=self.summed)
        except Exception as exc:
            # Keywords still judge the text; the verdict says the semantic layer did not.
            log.exception("semantic layer failed; judging by keywords only")
            return nothing, f"{type(exc).__name__}: {exc}"
        for n, finding in zip(wanted, found, strict=True):
            nothing[n] = finding
        return nothing, None

    def _vectors(self, texts: Sequence[str], embedder: Embedder) -> Vectors:
        """The vectors of ``texts``: kept ones reused, the others embedded in one batch."""
        keys = [" ".join(t.split()) for t in texts]
        with self._judged_lock:
            known = {k: self._judged[k] for k in keys if k in self._judged}
            for key in known:
                self._judged.move_to_end(key)
            missing = list(dict.fromkeys(k for k in keys if k not in known))
            self.counts["cached"] += len(keys) - len(missing)
        if missing:
            fresh = embedder.embed(missing)
            with self._judged_lock:
                self.counts["embedded"] += len(missing)
                for key, vector in zip(missing, fresh, strict=True):
                    known[key] = self._judged[key] = vector
                while len(self._judged) > MAX_CACHED:
                    self._judged.popitem(last=False)
        vectors: Vectors = np.stack([known[k] for k in keys])
        return vectors


def _blocks(match: KeywordMatch) -> bool:
    return match.library.score >= match.library.block_score


def _shifted(match: KeywordMatch, offset: int) -> KeywordMatch | None:
    """``match`` in the joined text as a match in the text after ``offset``; None if before."""
    if match.end <= offset:
        return None
    return dataclasses.replace(match, start=max(match.start - offset, 0), end=match.end - offset)


def _allowed(
    profile: ProfileConfig, matches: list[KeywordMatch], finding: SemanticFinding | None
) -> tuple[list[KeywordMatch], SemanticFinding | None]:
    """What of ``matches`` and ``finding`` counts under ``profile``."""
    ignored = {word.casefold() for word in profile.ignored_words}

    def enabled(label: str) -> bool:
        return profile.labels.get(label, profile.other_labels).enabled

    kept = [m for m in matches if m.keyword.casefold() not in ignored and enabled(m.library.label)]
    if finding is not None and not enabled(finding.library.label):
        finding = None
    return kept, finding


def _with_error(judgement: Judgement, error: str | None) -> Judgement:
    return judgement if error is None else dataclasses.replace(judgement, semantic_error=error)
