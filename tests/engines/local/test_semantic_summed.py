"""Summed-harm scoring (``engine.semantic_summed``): the score is all flag libraries' together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamguard.config.engine import LocalEngineConfig
from streamguard.core.verdict import Suggestion
from streamguard.engines.local.examples import load_example_file
from streamguard.engines.local.judge import Rules, judge
from streamguard.engines.local.moderator import TextModerator
from streamguard.engines.local.semantic import Classifier, SemanticIndex
from tests.engines.local.words import DIMENSIONS, EXAMPLES_TOML, WordEmbedder


@pytest.fixture
def examples_file(tmp_path: Path) -> Path:
    path = tmp_path / "examples.toml"
    path.write_text(EXAMPLES_TOML)
    return path


def _index_sharing_the_harm(examples_file: Path) -> SemanticIndex:
    """Every text: threat 40 %, drugs 35 %, benign 25 % (a classifier that ignores the text)."""
    libraries = load_example_file(examples_file)
    assert [lib.id for lib in libraries] == ["threat", "drugs", "benign"]
    classifier = Classifier(
        mean=np.zeros(DIMENSIONS),
        scale=np.ones(DIMENSIONS),
        weights=np.zeros((DIMENSIONS, 3)),
        bias=np.log([0.40, 0.35, 0.25]),
    )
    embedder = WordEmbedder()
    vectors = [embedder.embed(lib.examples) for lib in libraries]
    return SemanticIndex(libraries, vectors, classifier)


def test_summed_scoring_flags_harm_shared_by_two_libraries_neither_reaching_the_score(
    examples_file: Path,
) -> None:
    index = _index_sharing_the_harm(examples_file)
    vectors = WordEmbedder().embed(["weed outside your house"])
    (best,) = index.find(vectors)
    (summed,) = index.find(vectors, summed=True)
    assert best is not None
    assert summed is not None
    assert (best.library.id, best.score, best.summed) == ("threat", 40, False)
    # The label stays the most probable library's; the score is threat + drugs.
    assert (summed.library.id, summed.score, summed.summed) == ("threat", 75, True)
    assert summed.to_json()["summed"] is True
    assert "summed" not in best.to_json()
    rules = Rules(review_score=55, high_score=90)
    assert judge("weed outside your house", [], best, rules).suggestion is Suggestion.PASS
    flagged = judge("weed outside your house", [], summed, rules)
    assert (flagged.suggestion, flagged.label, flagged.score) == (Suggestion.REVIEW, "Abuse", 75)


def test_the_moderator_scores_by_the_sum_when_configured(examples_file: Path) -> None:
    text = "weed outside your house"  # near both threats and drug sales, no keyword
    answers = {}
    for summed in (False, True):
        config = LocalEngineConfig(
            semantic=True,
            semantic_summed=summed,
            semantic_review_score=55,
            example_libraries=[examples_file],
            reload_seconds=0,
        )
        (answers[summed],) = TextModerator(config, embedder=WordEmbedder()).judge_many([text])
    alone, together = answers[False], answers[True]
    assert not alone.keywords
    assert alone.suggestion is Suggestion.PASS
    assert 0 < alone.best_semantic_score < 55
    assert together.suggestion is Suggestion.REVIEW
    assert together.semantic is not None
    assert together.semantic.summed
    assert together.label == "Abuse"
    assert together.score > 55
