"""Property: whatever the official SDK's models allow AMS to send, we read it and never pass
what the service did not pass.

The strategies are built from ``tencentcloud.ams.v20201229.models`` (the ``:type Name: T``
lines of each model's docstring): every field present, absent, null, or of a neighbouring
type (a number as text, text as a number, an object or list where the other belongs), and
suggestions drawn from the documented values plus misspellings and unknown ones. Each
answer goes through what the engine does with it: ``parse``, the verdict, the summary
check, the callback body (bare and wrapped) and the stored JSON of the verdict.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from tencentcloud.ams.v20201229 import models as sdk  # type: ignore[import-untyped]

from streamguard.core.excerpt import Excerpt
from streamguard.core.verdict import Suggestion, Verdict
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.callbacks import task_detail
from streamguard.tencentcloud.models import (
    CreateTasksResponse,
    DescribeTasksResponse,
    SyncTaskResponse,
    TaskDetail,
    parse,
)
from tests.support.sdk_shapes import CLASS, SdkShapes, objects, says

_shapes = SdkShapes(sdk, list_size=4)
sdk_fields = _shapes.fields
model = _shapes.model
_says, _objects, _CLASS = says, objects, CLASS


def held(answer: dict[str, Any]) -> set[Suggestion]:
    """The Block/Review suggestions a detail holds: the task's, its labels', its slices' and
    their text, moan and AIGC results'."""
    said = [answer.get("Suggestion")]
    said += [label.get("Suggestion") for label in _objects(answer.get("Labels"))]
    for piece in _objects(answer.get("AudioSegments")):
        result = piece.get("Result")
        if isinstance(result, dict):
            said.append(result.get("Suggestion"))
            for family in ("TextResults", "MoanResults", "AIGCRecognitionResults"):
                said += [entry.get("Suggestion") for entry in _objects(result.get(family))]
    return {s for s in map(_says, said) if s is not None}


def stored(verdict: Verdict) -> None:
    """What the task store does with a verdict: JSON, and back."""
    again = verdicts.from_json(json.loads(json.dumps(verdict.to_json(), allow_nan=False)))
    assert again == verdict


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(model("DescribeTaskDetailResponse"))
def test_any_task_detail_is_read_and_never_passes_a_block_or_review(
    answer: dict[str, Any],
) -> None:
    detail = parse(TaskDetail, answer)
    verdict = verdicts.from_detail("seg", detail)
    holds = held(answer)
    if holds:
        assert verdict.suggestion is not Suggestion.PASS, (holds, verdict)
    if Suggestion.BLOCK in holds:
        assert verdict.suggestion is Suggestion.BLOCK
    stored(verdicts.remapped(verdict, Excerpt(((1.0, 9.0), (12.0, 14.0)))))
    # the same detail as a callback, bare or wrapped like an API answer
    body = json.dumps(answer).encode()
    wrapped = json.dumps({"Response": answer}).encode()
    bare, inner = task_detail(body), task_detail(wrapped)
    assert (bare is None) is (inner is None) is (not detail.task_id)


@SETTINGS
@given(model("DescribeTasksResponse"))
def test_a_summary_settles_a_task_only_when_it_says_exactly_pass(answer: dict[str, Any]) -> None:
    page = parse(DescribeTasksResponse, answer)
    raw = _objects(answer.get("Data"))
    assert len(page.data) == len(raw)
    for summary, entry in zip(page.data, raw, strict=True):
        if verdicts.summary_passes(summary):
            assert isinstance(entry.get("Suggestion"), str)
            assert entry["Suggestion"].strip().lower() == "pass"
            assert not held({"Labels": entry.get("Labels")})
            stored(verdicts.from_summary("seg", summary))


@SETTINGS
@given(model("CreateAudioModerationTaskResponse"))
def test_any_create_answer_is_read(answer: dict[str, Any]) -> None:
    created = parse(CreateTasksResponse, answer)
    assert all(isinstance(result.code, str) for result in created.results)


@SETTINGS
@given(model("CreateAudioModerationSyncTaskResponse"))
def test_any_sync_answer_is_read_and_never_passes_a_block_or_review(
    answer: dict[str, Any],
) -> None:
    verdict = verdicts.from_sync("seg", parse(SyncTaskResponse, answer))
    if _says(answer.get("Suggestion")) is not None:
        assert verdict.suggestion is not Suggestion.PASS
    stored(verdict)


def test_the_strategies_cover_the_sdk_models() -> None:
    # guards the docstring parsing the strategies rely on
    fields = sdk_fields("AudioResult")
    assert fields["Score"] == "int"
    assert fields["TextResults"] == "list of AudioResultDetailTextResult"
    assert "AudioResult" in sdk_fields("AudioSegments")["Result"]
    assert len(sdk_fields("DescribeTaskDetailResponse")) >= 15
