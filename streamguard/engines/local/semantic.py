"""The semantic layer: how near a text's meaning is to each example library.

At start (and after an example library changes) every example is embedded and a
multinomial logistic regression is fitted over the embeddings, one class per library
(flag and benign alike), with numpy: a few hundred examples fit in well under a second.
Its probabilities are the calibrated part: a text's semantic score for a flag library is
the probability of that library's class, in percent; with ``summed`` scoring
(``engine.semantic_summed``) it is the probability of all flag classes together (harm of
any kind, spread over neighbouring libraries), still labelled by the most probable flag
library. Benign libraries pull texts that share
words or topics with harmful ones (gaming, idioms, news, prevention talk) away from them.
The nearest examples of the winning library go into the verdict, so a moderator sees why.

Pure numpy; blocking work (embedding, fitting) belongs on a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from streamguard.engines.local.embedder import Embedder, Vectors
from streamguard.engines.local.examples import ExampleKind, ExampleLibrary

__all__ = ["Classifier", "Nearest", "SemanticFinding", "SemanticIndex"]

Floats = npt.NDArray[np.float64]

L2 = 1e-1
"""Weight decay of the classifier, chosen with ``semantic_review_score`` by cross-validation
on the tuning examples (``bench/semantic_tune.py``): the most recall with at most ~3% of
benign examples flagged."""
STEPS = 500
"""Gradient steps of the fit (momentum; the loss has settled well before)."""
NEAREST = 3
"""Examples of the winning library shown with a finding."""


@dataclass(frozen=True, slots=True)
class Nearest:
    """An example near the judged text, and how near (cosine similarity)."""

    text: str
    similarity: float

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "similarity": round(self.similarity, 3)}


@dataclass(frozen=True, slots=True)
class SemanticFinding:
    """The flag library a text's meaning is nearest to, with the classifier's score."""

    library: ExampleLibrary
    score: int
    """The library's class probability, in percent (0-100); summed: all flag libraries'."""
    nearest: tuple[Nearest, ...]
    context: bool = False
    """Found only with the previous segment's tail joined to the text."""
    summed: bool = False
    """``score`` is the summed probability of every flag library, not this library's."""

    def to_json(self) -> dict[str, Any]:
        return {
            "library_id": self.library.id,
            "library_name": self.library.name,
            "library_file": Path(self.library.source).name,
            "label": self.library.label,
            "sub_label": self.library.sub_label,
            "score": self.score,
            "examples": [n.to_json() for n in self.nearest],
            "context": self.context,
            **({"summed": True} if self.summed else {}),
        }


class Classifier:
    """Multinomial logistic regression over standardised embeddings (numpy, full batch)."""

    def __init__(self, mean: Floats, scale: Floats, weights: Floats, bias: Floats) -> None:
        self._mean, self._scale = mean, scale
        self._weights, self._bias = weights, bias

    @classmethod
    def fit(
        cls, vectors: Vectors, classes: npt.NDArray[np.int64], *, l2: float = L2, steps: int = STEPS
    ) -> Self:
        """Fit to ``vectors`` (rows) of class indices ``classes`` (0..k-1, every one present).

        Deterministic: same input, same weights. Examples count alike, so a library's prior
        grows with its size (a large benign library keeps false flags down; class-balanced
        weights found more but flagged more benign text in cross-validation).
        """
        x = vectors.astype(np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        x = (x - mean) / scale
        count = int(classes.max()) + 1
        target = np.eye(count)[classes]
        # Step size from the loss's curvature bound, so the fit cannot diverge.
        rate = 1.0 / (0.5 * float(np.linalg.eigvalsh(x.T @ x / len(x)).max()) + l2)
        weights, bias = np.zeros((x.shape[1], count)), np.zeros(count)
        velocity_w, velocity_b = np.zeros_like(weights), np.zeros_like(bias)
        momentum = 0.9
        for _ in range(steps):
            ahead_w, ahead_b = weights + momentum * velocity_w, bias + momentum * velocity_b
            error = (_softmax(x @ ahead_w + ahead_b) - target) / len(x)
            velocity_w = momentum * velocity_w - rate * (x.T @ error + l2 * ahead_w)
            velocity_b = momentum * velocity_b - rate * error.sum(axis=0)
            weights, bias = weights + velocity_w, bias + velocity_b
        return cls(mean, scale, weights, bias)

    def probabilities(self, vectors: Vectors) -> Floats:
        """One row of class probabilities per vector."""
        x = (vectors.astype(np.float64) - self._mean) / self._scale
        return _softmax(x @ self._weights + self._bias)


def _softmax(logits: Floats) -> Floats:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: Floats = shifted / shifted.sum(axis=1, keepdims=True)
    return result


class SemanticIndex:
    """Example libraries, their embedded examples and the classifier fitted on them."""

    def __init__(
        self,
        libraries: Sequence[ExampleLibrary],
        vectors: Sequence[Vectors],
        classifier: Classifier,
    ) -> None:
        self.libraries = tuple(libraries)
        self._vectors = tuple(vectors)
        self._classifier = classifier
        self._flags = [i for i, lib in enumerate(libraries) if lib.kind is ExampleKind.FLAG]

    @classmethod
    def build(
        cls,
        libraries: Sequence[ExampleLibrary],
        embedder: Embedder,
        *,
        cache: dict[str, Vectors] | None = None,
        l2: float = L2,
    ) -> Self:
        """Embed every example (reusing ``cache``, text → vector, and filling it) and fit."""
        cache = {} if cache is None else cache
        missing = list(
            dict.fromkeys(t for lib in libraries for t in lib.examples if t not in cache)
        )
        for text, vector in zip(missing, embedder.embed(missing), strict=True):
            cache[text] = vector
        vectors = [np.stack([cache[t] for t in lib.examples]) for lib in libraries]
        classes = np.concatenate(
            [np.full(len(v), index, dtype=np.int64) for index, v in enumerate(vectors)]
        )
        classifier = Classifier.fit(np.concatenate(vectors), classes, l2=l2)
        return cls(libraries, vectors, classifier)

    def find(self, vectors: Vectors, *, summed: bool = False) -> list[SemanticFinding | None]:
        """For each vector, the flag library of highest probability (None without any).

        Its score is that library's probability, or with ``summed`` the probability of all
        flag libraries together (the label stays the most probable library's).
        """
        if not self._flags:
            return [None] * len(vectors)
        probabilities = self._classifier.probabilities(vectors)
        found: list[SemanticFinding | None] = []
        for vector, row in zip(vectors, probabilities, strict=True):
            best = max(self._flags, key=lambda i: float(row[i]))
            harm = float(row[self._flags].sum()) if summed else float(row[best])
            found.append(
                SemanticFinding(
                    library=self.libraries[best],
                    score=min(100, round(harm * 100)),
                    nearest=self._nearest(best, vector),
                    summed=summed,
                )
            )
        return found

    def _nearest(self, library: int, vector: Vectors) -> tuple[Nearest, ...]:
        similarity = self._vectors[library] @ vector
        order = np.argsort(-similarity)[:NEAREST]
        examples = self.libraries[library].examples
        return tuple(Nearest(examples[i], float(similarity[i])) for i in order)
