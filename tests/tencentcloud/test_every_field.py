"""Every field of every answer, one at a time: absent, null and of each neighbouring type.

The random property test (``test_sdk_shapes``) draws many answers; this walk guarantees
that each field the official SDK's models declare (to ``MAX_DEPTH``) meets every odd value
at least once, in answers that hold a Block or a Review in each place a detail may hold one
(the task, its labels, a slice, a slice's text / moan / AIGC results) and speech in a
language AMS does not judge. Each answer is parsed, made a verdict, stored as JSON and read
as a callback body: no exception, and never a Pass where the answer holds Block or Review
or speech AMS did not judge.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from tencentcloud.ams.v20201229 import models as sdk  # type: ignore[import-untyped]

from streamguard.core.verdict import Suggestion
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.callbacks import task_detail
from streamguard.tencentcloud.models import (
    CreateTasksResponse,
    DescribeTasksResponse,
    SyncTaskResponse,
    TaskDetail,
    parse,
)
from tests.tencentcloud.test_sdk_shapes import _CLASS, _objects, _says, sdk_fields, stored

MAX_DEPTH = 5
ODD_VALUES: tuple[Any, ...] = (None, "", "x", "97.5", 7, 97.5, -1, True, [], {}, ["x"], [{}])
"""What a field may hold instead of its declared type (``_ABSENT`` is tried too)."""
_ABSENT = object()
CHINESE = {"zh", "cmn", "chi", "zho", "chinese", "mandarin"}
Path = tuple[str | int, ...]


def _kind_model(kind: str) -> str | None:
    found = _CLASS.search(kind)
    if found:
        return found[1]
    return kind if hasattr(sdk, kind) else None


def full(name: str, depth: int = 0) -> dict[str, Any]:
    """An answer of SDK model ``name`` with every field present and proper."""
    answer: dict[str, Any] = {}
    for field, kind in sdk_fields(name).items():
        answer[field] = _proper(kind, field, depth)
    return answer


def _proper(kind: str, field: str, depth: int) -> Any:
    if kind.startswith("list of "):
        inner = _proper(kind.removeprefix("list of "), field, depth)
        return [] if inner is None else [inner]
    model = _kind_model(kind)
    if model is not None:
        return full(model, depth + 1) if depth < MAX_DEPTH else None
    if field == "Suggestion":
        return "Pass" if kind == "str" else 0
    if field in ("Label", "Status"):
        return {"Label": "Normal", "Status": "FINISH"}[field]
    return {"int": 1, "float": 1.5, "bool": True}.get(kind, "1")


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every field's path in ``value`` (list items by index)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def mutated(answer: dict[str, Any], path: Path, odd: Any) -> dict[str, Any]:
    changed = copy.deepcopy(answer)
    parent: Any = changed
    for step in path[:-1]:
        parent = parent[step]
    if odd is _ABSENT:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(odd)
    return changed


def _slices(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        piece["Result"]
        for piece in _objects(answer.get("AudioSegments"))
        if isinstance(piece.get("Result"), dict)
    ]


def held(answer: dict[str, Any]) -> set[Suggestion]:
    """Block/Review said anywhere a detail says something: the task, its labels, its slices,
    and their text, moan and AIGC results (judged independently of the code under test)."""
    said = [answer.get("Suggestion")]
    said += [label.get("Suggestion") for label in _objects(answer.get("Labels"))]
    for result in _slices(answer):
        said.append(result.get("Suggestion"))
        for family in ("TextResults", "MoanResults", "AIGCRecognitionResults"):
            said += [entry.get("Suggestion") for entry in _objects(result.get(family))]
    return {s for s in map(_says, said) if s is not None}


def foreign(results: list[dict[str, Any]]) -> bool:
    """Whether any LanguageResults entry names a language other than Chinese."""
    for result in results:
        for entry in _objects(result.get("LanguageResults")):
            label = entry.get("Label")
            if isinstance(label, str) and label.strip():
                lowered = label.strip().lower()
                if lowered not in CHINESE and lowered.split("-")[0] not in CHINESE:
                    return True
    return False


def _detail(where: str, said: str) -> dict[str, Any]:
    """A full FINISH detail that says ``said`` in one place (``where``), Pass elsewhere."""
    answer = full("DescribeTaskDetailResponse")
    result = answer["AudioSegments"][0]["Result"]
    result["LanguageResults"][0]["Label"] = "English" if where == "language" else "cmn"
    if where in ("language", "none"):
        return answer
    place = {
        "task": answer,
        "label": answer["Labels"][0],
        "slice": result,
        "text": result["TextResults"][0],
        "moan": result["MoanResults"][0],
        "aigc": result["AIGCRecognitionResults"][0],
    }[where]
    place["Suggestion"] = said
    return answer


BASES = [
    (where, said)
    for where in ("task", "label", "slice", "text", "moan", "aigc")
    for said in ("Block", "Review")
] + [("language", ""), ("none", "")]


def _check_detail(answer: dict[str, Any]) -> None:
    detail = parse(TaskDetail, answer)
    verdict = verdicts.from_detail("seg", detail)
    holds = held(answer)
    if holds or foreign(_slices(answer)):
        assert verdict.suggestion is not Suggestion.PASS, (holds, verdict)
    if Suggestion.BLOCK in holds:
        assert verdict.suggestion is Suggestion.BLOCK, verdict
    stored(verdict)
    body = json.dumps(answer).encode()
    wrapped = json.dumps({"Response": answer}).encode()
    assert (task_detail(body) is None) is (task_detail(wrapped) is None)


@pytest.mark.parametrize(("where", "said"), BASES, ids=[f"{w}-{s}" for w, s in BASES])
def test_every_field_of_a_detail_in_every_odd_shape(where: str, said: str) -> None:
    base = _detail(where, said)
    checked = 0
    for path in paths(base):
        for odd in (_ABSENT, *ODD_VALUES):
            _check_detail(mutated(base, path, odd))
            checked += 1
    assert checked > 500  # the walk reached the nested models


def test_every_field_of_a_page_in_every_odd_shape() -> None:
    base = full("DescribeTasksResponse")
    base["Data"].append(copy.deepcopy(base["Data"][0]))
    base["Data"][1]["Labels"][0]["Suggestion"] = "Block"
    for path in paths(base):
        for odd in (_ABSENT, *ODD_VALUES):
            answer = mutated(base, path, odd)
            page = parse(DescribeTasksResponse, answer)
            for summary, entry in zip(page.data, _objects(answer.get("Data")), strict=True):
                if verdicts.summary_passes(summary):
                    assert _says(entry.get("Suggestion")) is None
                    assert str(entry.get("Suggestion")).strip().lower() == "pass"
                    assert not {
                        _says(lab.get("Suggestion")) for lab in _objects(entry.get("Labels"))
                    } - {None}
                    stored(verdicts.from_summary("seg", summary))


@pytest.mark.parametrize("said", ["Block", "Review", "language"])
def test_every_field_of_a_sync_answer_in_every_odd_shape(said: str) -> None:
    base = full("CreateAudioModerationSyncTaskResponse")
    base["LanguageResults"][0]["Label"] = "English" if said == "language" else "cmn"
    if said != "language":
        base["TextResults"][0]["Suggestion"] = said
    for path in paths(base):
        for odd in (_ABSENT, *ODD_VALUES):
            answer = mutated(base, path, odd)
            verdict = verdicts.from_sync("seg", parse(SyncTaskResponse, answer))
            said_here = [answer.get("Suggestion")]
            said_here += [e.get("Suggestion") for e in _objects(answer.get("TextResults"))]
            said_here += [e.get("Suggestion") for e in _objects(answer.get("MoanResults"))]
            if {_says(s) for s in said_here} - {None} or foreign([answer]):
                assert verdict.suggestion is not Suggestion.PASS, (path, odd, verdict)
            stored(verdict)


def test_every_field_of_a_create_answer_in_every_odd_shape() -> None:
    base = full("CreateAudioModerationTaskResponse")
    for path in paths(base):
        for odd in (_ABSENT, *ODD_VALUES):
            created = parse(CreateTasksResponse, mutated(base, path, odd))
            assert all(isinstance(result.code, str) for result in created.results)
