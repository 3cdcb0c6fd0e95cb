"""How keyword hits and the semantic score combine (fixed findings, no model)."""

from __future__ import annotations

import pytest

from streamguard.core.verdict import Suggestion
from streamguard.engines.local.examples import ExampleKind, ExampleLibrary
from streamguard.engines.local.judge import Level, Rules, Signal, judge
from streamguard.engines.local.keywords import KeywordLibrary, KeywordMatch
from streamguard.engines.local.semantic import Nearest, SemanticFinding

RULES = Rules(review_score=70, high_score=90, block=False)
INSULTS = KeywordLibrary(id="insults", name="Insults", label="Abuse", score=70, keywords=["idiot"])
THREATS = KeywordLibrary(
    id="threats", name="Threats", label="Abuse", sub_label="Threat", score=90, keywords=["kill"]
)
DRUGS = ExampleLibrary(
    id="drugs",
    name="Drug sales",
    label="Illegal",
    sub_label="Drugs",
    kind=ExampleKind.FLAG,
    score=80,
    block_score=80,
    examples=("selling pills dm me",),
)
TEXT = "you idiot, selling pills dm me"


def _match(library: KeywordLibrary) -> KeywordMatch:
    return KeywordMatch(library.keywords[0], library, 4, 9)


def _finding(score: int, library: ExampleLibrary = DRUGS) -> SemanticFinding:
    return SemanticFinding(library, score, (Nearest(library.examples[0], 0.91),))


def test_nothing_hit_passes() -> None:
    judgement = judge("hello there", [], _finding(40), RULES)
    assert (judgement.suggestion, judgement.label, judgement.score) == (
        Suggestion.PASS,
        "Normal",
        0,
    )
    assert (judgement.hit, judgement.signals, judgement.semantic) == (False, (), None)
    assert judgement.best_semantic_score == 40
    assert judgement.to_json()["semantic"] is None


@pytest.mark.parametrize(
    ("library", "suggestion"), [(INSULTS, Suggestion.REVIEW), (THREATS, Suggestion.BLOCK)]
)
def test_a_keyword_hit_carries_its_library_and_blocks_by_its_block_score(
    library: KeywordLibrary, suggestion: Suggestion
) -> None:
    judgement = judge(TEXT, [_match(library)], None, RULES)
    assert (judgement.suggestion, judgement.label, judgement.score) == (
        suggestion,
        "Abuse",
        library.score,
    )
    assert judgement.signals == (Signal.KEYWORD,)
    assert judgement.reason == "keyword hit"


def test_a_medium_semantic_score_is_a_review_with_that_score() -> None:
    judgement = judge(TEXT, [], _finding(75), RULES)
    assert (judgement.suggestion, judgement.label, judgement.sub_label) == (
        Suggestion.REVIEW,
        "Illegal",
        "Drugs",
    )
    assert (judgement.score, judgement.level, judgement.signals) == (
        75,
        Level.MEDIUM,
        (Signal.SEMANTIC,),
    )
    assert judgement.reason == "semantic match (medium)"


def test_a_high_semantic_score_carries_the_library_score_but_still_only_reviews() -> None:
    judgement = judge(TEXT, [], _finding(95), RULES)
    assert (judgement.suggestion, judgement.score, judgement.level) == (
        Suggestion.REVIEW,
        80,
        Level.HIGH,
    )
    answer = judgement.to_json()
    assert answer["semantic"]["examples"] == [{"text": "selling pills dm me", "similarity": 0.91}]
    assert (answer["semantic"]["score"], answer["semantic"]["level"]) == (95, "high")


def test_semantic_block_lets_a_high_match_block_when_its_library_score_allows() -> None:
    blocking = Rules(review_score=70, high_score=90, block=True)
    assert judge(TEXT, [], _finding(95), blocking).suggestion is Suggestion.BLOCK
    assert judge(TEXT, [], _finding(85), blocking).suggestion is Suggestion.REVIEW
    weak = ExampleLibrary("x", "x", "Ad", "", ExampleKind.FLAG, 60, 80, ("spam",))
    assert judge(TEXT, [], _finding(95, weak), blocking).suggestion is Suggestion.REVIEW


def test_below_the_review_score_the_semantic_layer_says_nothing() -> None:
    judgement = judge(TEXT, [_match(INSULTS)], _finding(69), RULES)
    assert (judgement.signals, judgement.semantic, judgement.score) == ((Signal.KEYWORD,), None, 70)


def test_both_signals_fire_and_the_higher_score_wins() -> None:
    judgement = judge(TEXT, [_match(INSULTS)], _finding(95), RULES)
    assert judgement.signals == (Signal.KEYWORD, Signal.SEMANTIC)
    assert (judgement.label, judgement.score, judgement.suggestion) == (
        "Illegal",
        80,
        Suggestion.REVIEW,
    )
    assert judgement.reason == "keyword hit; semantic match (high)"
    assert judgement.to_json()["keywords"][0]["text"] == "idiot"


def test_a_keyword_wins_a_tie_and_its_block_stands() -> None:
    tie = ExampleLibrary("t", "t", "Other", "", ExampleKind.FLAG, 90, 80, ("x",))
    judgement = judge(TEXT, [_match(THREATS)], _finding(95, tie), RULES)
    assert (judgement.label, judgement.suggestion) == ("Abuse", Suggestion.BLOCK)
