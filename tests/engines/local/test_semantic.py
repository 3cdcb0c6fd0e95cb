"""The semantic layer with a stand-in embedder: examples, classifier, context across cuts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streamguard.config.engine import LocalEngineConfig
from streamguard.config.policy import LabelRule, ProfileConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.segment import Segment, SegmentFlag
from streamguard.core.verdict import Suggestion
from streamguard.engines.local.context import StreamTails, Tail, tail_words
from streamguard.engines.local.examples import (
    ExampleKind,
    ExampleSet,
    default_examples_path,
    load_example_file,
)
from streamguard.engines.local.judge import Level
from streamguard.engines.local.keywords import LibraryError
from streamguard.engines.local.moderator import TextModerator
from streamguard.engines.local.semantic import Classifier, SemanticIndex
from tests.engines.local.words import EXAMPLES_TOML, WordEmbedder


@pytest.fixture
def examples_file(tmp_path: Path) -> Path:
    path = tmp_path / "examples.toml"
    path.write_text(EXAMPLES_TOML)
    return path


@pytest.fixture
def moderator(examples_file: Path) -> TextModerator:
    config = LocalEngineConfig(semantic=True, example_libraries=[examples_file], reload_seconds=0)
    return TextModerator(config, embedder=WordEmbedder())


def test_the_shipped_examples_load_and_hold_out_a_part_never_fitted() -> None:
    libraries = load_example_file(default_examples_path())
    flags = [lib for lib in libraries if lib.kind is ExampleKind.FLAG]
    assert len(flags) >= 8
    assert any(lib.kind is ExampleKind.BENIGN for lib in libraries)
    for library in libraries:
        assert library.examples, library.id
        assert library.held_out, library.id
        assert not set(library.examples) & set(library.held_out), library.id


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        ('[[library]]\nid = "a"\nname = "a"\nlabel = "A"\nexamples = ["x"]\ncolour = 1', "colour"),
        ('[[library]]\nid = "a"\nname = "a"\nlabel = "A"\nexamples = []', "at least one"),
        ('[[library]]\nid = "a"\nname = "a"\nlabel = "A"\nkind = "odd"\nexamples = ["x"]', "kind"),
        (f'[[library]]\nid = "a"\nname = "a"\nlabel = "A"\nexamples = ["{"x" * 301}"]', "301"),
        ('[[library]]\nid = "a"\nname = "a"\nlabel = "A"\nscore = 200\nexamples = ["x"]', "score"),
        ("[[library]\n", "not valid TOML"),
    ],
)
def test_a_broken_example_file_names_what_is_wrong(
    tmp_path: Path, edit: str, complaint: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(edit)
    with pytest.raises(LibraryError, match=complaint):
        load_example_file(path)


def test_a_broken_edit_keeps_the_working_examples(examples_file: Path) -> None:
    examples = ExampleSet([examples_file])
    examples_file.write_text(EXAMPLES_TOML + "\n[[library]]\nid = 'threat'\n")
    assert examples.refresh() is False
    assert [lib.id for lib in examples.libraries] == ["threat", "drugs", "benign"]
    assert examples.reload_failures == 1
    assert examples_file in examples.errors


def test_the_classifier_separates_what_it_was_fitted_on_deterministically() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 16))
    vectors = np.concatenate([c + 0.1 * rng.standard_normal((10, 16)) for c in centres])
    classes = np.repeat(np.arange(3), 10)
    first = Classifier.fit(vectors.astype(np.float32), classes).probabilities(vectors)
    again = Classifier.fit(vectors.astype(np.float32), classes).probabilities(vectors)
    assert np.array_equal(first, again)
    assert (first.argmax(axis=1) == classes).all()
    assert np.allclose(first.sum(axis=1), 1.0)


def test_the_index_names_the_nearest_flag_library_and_its_nearest_examples(
    examples_file: Path,
) -> None:
    embedder = WordEmbedder()
    index = SemanticIndex.build(load_example_file(examples_file), embedder)
    (finding,) = index.find(embedder.embed(["i know where you live"]))
    assert finding is not None
    assert (finding.library.id, finding.nearest[0].text) == ("threat", "i know where you live")
    assert finding.nearest[0].similarity == pytest.approx(1.0, abs=1e-5)
    similarities = [n.similarity for n in finding.nearest]
    assert similarities == sorted(similarities, reverse=True)
    assert len(similarities) == 3
    assert finding.score >= 90


def test_texts_near_harmful_examples_are_flagged_and_others_pass(
    moderator: TextModerator,
) -> None:
    threat, drugs, chat, idiot = moderator.judge_many(
        [
            "i am outside your house tonight",
            "cheap pills and weed",
            "nice weather today",
            "you idiot",
        ]
    )
    assert (threat.label, threat.sub_label, threat.suggestion) == (
        "Abuse",
        "Threat",
        Suggestion.REVIEW,
    )
    assert threat.semantic is not None
    assert threat.semantic.library.id == "threat"
    assert (drugs.label, drugs.sub_label) == ("Illegal", "Drugs")
    assert (chat.suggestion, chat.hit) == (Suggestion.PASS, False)
    # The shipped keyword libraries stand beside the examples.
    assert [m.keyword for m in idiot.keywords] == ["idiot"]


def test_examples_are_embedded_once_and_a_changed_file_is_refitted(
    moderator: TextModerator, examples_file: Path
) -> None:
    embedder = moderator.embedder
    assert isinstance(embedder, WordEmbedder)
    moderator.load()
    fitted = embedder.embedded
    assert fitted == 12
    examples_file.write_text(EXAMPLES_TOML.replace('"pills for sale cheap weed",', '"molly",'))
    assert moderator.refresh_examples() is True
    assert embedder.embedded == fitted + 1  # only the new example


def test_the_semantic_switch_turns_the_layer_off() -> None:
    moderator = TextModerator(LocalEngineConfig(semantic=False))
    assert (moderator.semantic, moderator.embedder) == (False, None)
    (judgement,) = moderator.judge_many(["i am outside your house tonight"])
    assert (judgement.hit, judgement.best_semantic_score) == (False, 0)


def test_a_failing_semantic_layer_leaves_the_keywords_to_judge(moderator: TextModerator) -> None:
    embedder = moderator.embedder
    assert isinstance(embedder, WordEmbedder)
    moderator.load()
    embedder.fail = RuntimeError("model gone")
    idiot, threat = moderator.judge_many(["you idiot", "i am outside your house tonight"])
    assert [m.keyword for m in idiot.keywords] == ["idiot"]
    assert idiot.semantic_error is None  # keywords decided it: never embedded
    assert (threat.hit, threat.semantic) == (False, None)
    assert threat.semantic_error == "RuntimeError: model gone"
    assert threat.to_json()["semantic_error"] == "RuntimeError: model gone"


def test_a_profile_drops_its_ignored_words_and_switched_off_labels(
    moderator: TextModerator,
) -> None:
    profile = ProfileConfig(ignored_words=["IDIOT"], labels={"Illegal": LabelRule(enabled=False)})
    idiot, drugs = moderator.judge_many(["you idiot", "cheap pills and weed"], profile)
    assert (idiot.hit, drugs.hit) == (False, False)


def test_a_keyword_cut_by_the_segment_boundary_is_found_once(moderator: TextModerator) -> None:
    # "shut up" is in the shipped insults library; the cut falls between its words.
    judgement = moderator.judge_after("up and listen", Tail("oh just shut"))
    (match,) = judgement.keywords
    assert (match.keyword, match.start, match.end) == ("shut up", 0, 2)
    # A hit wholly inside the tail was reported with the segment before.
    assert moderator.judge_after("and listen", Tail("you idiot")).keywords == ()


def test_a_meaning_cut_by_the_boundary_counts_with_the_tail_and_is_reported_once(
    moderator: TextModerator,
) -> None:
    (alone,) = moderator.judge_many(["outside your house tonight"])
    assert alone.semantic is not None
    assert (alone.level, alone.semantic.context) == (Level.MEDIUM, False)
    # With the words before the cut the threat is plainer: the joined finding counts.
    joined = moderator.judge_after("outside your house tonight", Tail("i am"))
    assert joined.semantic is not None
    assert (joined.semantic.library.id, joined.level, joined.semantic.context) == (
        "threat",
        Level.HIGH,
        True,
    )
    assert joined.semantic.score > alone.semantic.score
    # The segment before was already flagged with it: only the text's own finding counts.
    again = moderator.judge_after("outside your house tonight", Tail("i am", "threat"))
    assert again.semantic == alone.semantic
    # A tail that adds nothing harmful leaves the text's own finding.
    calm = moderator.judge_after("outside your house tonight", Tail("the weather"))
    assert calm.semantic == alone.semantic


def _segment(seq: int, *, flags: frozenset[SegmentFlag] = frozenset()) -> Segment:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    samples = np.zeros(SAMPLE_RATE, dtype=np.int16)
    return Segment("room-1", seq, at, samples, at, at, float(seq), 0.0, flags)


def test_a_tail_is_used_only_by_the_next_segment_without_a_gap() -> None:
    tails = StreamTails(words=3)
    tails.remember(_segment(4), "one two three four five", "threat")
    assert tails.before(_segment(5)) == Tail("three four five", "threat")
    assert tails.before(_segment(6)) is None
    assert tails.before(_segment(5, flags=frozenset({SegmentFlag.GAP_BEFORE}))) is None
    assert StreamTails(words=0).before(_segment(5)) is None
    assert tail_words("a b c", 0) == ""


def test_only_texts_whose_meaning_can_change_the_answer_are_embedded(
    moderator: TextModerator,
) -> None:
    embedder = moderator.embedder
    assert isinstance(embedder, WordEmbedder)
    moderator.load()
    before = embedder.embedded
    texts = ["gg", "you idiot, sit down now", "nice weather today", "nice  weather today"]
    short, insult, weather, again = moderator.judge_many(texts)
    # One embedding: "gg" is too short, the insult is decided by a keyword, and the
    # repeated text (whitespace aside) is embedded once.
    assert embedder.embedded == before + 1
    assert moderator.counts == {
        "too short": 1,
        "decided by keywords": 1,
        "embedded": 1,
        "cached": 1,
    }
    assert (short.hit, insult.suggestion, weather.hit, again.hit) == (
        False,
        Suggestion.REVIEW,
        False,
        False,
    )
    assert insult.semantic is None
    assert [m.keyword for m in insult.keywords] == ["idiot"]
    moderator.judge_many(["nice weather today"])
    assert embedder.embedded == before + 1  # kept from the call before


def test_with_semantic_block_a_review_keyword_hit_is_still_embedded(examples_file: Path) -> None:
    config = LocalEngineConfig(
        semantic=True, semantic_block=True, example_libraries=[examples_file]
    )
    embedder = WordEmbedder()
    moderator = TextModerator(config, embedder=embedder)
    moderator.load()
    before = embedder.embedded
    # "idiot" suggests Review (score 70 < block 80): a high semantic match could Block.
    (judgement,) = moderator.judge_many(["you idiot i am outside your house tonight"])
    assert embedder.embedded == before + 1
    assert judgement.semantic is not None


def test_short_texts_are_judged_by_keywords_alone(examples_file: Path) -> None:
    config = LocalEngineConfig(
        semantic=True, semantic_min_words=6, example_libraries=[examples_file]
    )
    moderator = TextModerator(config, embedder=WordEmbedder())
    (judgement,) = moderator.judge_many(["i am outside your house"])
    assert (judgement.hit, moderator.counts["too short"]) == (False, 1)
