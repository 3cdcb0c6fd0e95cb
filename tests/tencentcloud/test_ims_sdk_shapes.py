"""Property: whatever the official IMS SDK's models allow IMS to send, we read it and never
pass a picture the answer holds a Block or Review for.

The strategies are built from ``tencentcloud.ims.v20201229.models`` (the ``:type Name: T``
lines of each model's docstring): every field present, absent, null or of a neighbouring
type (a number as text, text as a number, an object or list where the other belongs), and
suggestions drawn from the documented values plus misspellings and unknown ones. Each
answer goes through what the engine does with it: ``parse``, the verdict, the verdict's
JSON, and the callback reader (bare and wrapped).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel
from tencentcloud.ims.v20201229 import models as sdk  # type: ignore[import-untyped]

from streamguard.core.verdict import Suggestion
from streamguard.engines.ims import verdicts
from streamguard.tencentcloud import ims_models
from streamguard.tencentcloud.ims_models import (
    AsyncTaskResponse,
    ImageModerationResponse,
    callback_result,
    parse,
)
from tests.support.sdk_shapes import CLASS, SdkShapes, objects, says

_shapes = SdkShapes(sdk, list_size=3)
sdk_fields = _shapes.fields
model = _shapes.model
_says, _objects, _CLASS = says, objects, CLASS
RESULT_ARRAYS = ("LabelResults", "ObjectResults", "OcrResults", "LibResults")


def held(answer: dict[str, Any]) -> set[Suggestion]:
    """The Block/Review suggestions an answer holds: its own and its results'."""
    said = [answer.get("Suggestion")]
    for key in RESULT_ARRAYS:
        said += [result.get("Suggestion") for result in _objects(answer.get(key))]
    return {s for s in map(_says, said) if s is not None}


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(model("ImageModerationResponse"))
def test_any_answer_is_read_and_never_passes_a_block_or_review(answer: dict[str, Any]) -> None:
    verdict = verdicts.from_answer("frame", parse(ImageModerationResponse, answer))
    holds = held(answer)
    if holds:
        assert verdict.suggestion is not Suggestion.PASS, (holds, verdict)
    if Suggestion.BLOCK in holds:
        assert verdict.suggestion is Suggestion.BLOCK
    if verdict.suggestion is Suggestion.PASS:
        assert verdict.label == "Normal"
        assert not verdict.hit
    else:
        assert verdict.label
        assert verdict.hit
    assert 0 <= verdict.score <= 100
    json.dumps(verdict.to_json(), allow_nan=False)  # storable as it is


@SETTINGS
@given(model("ImageModerationResponse"))
def test_any_callback_is_read_bare_or_wrapped_alike(answer: dict[str, Any]) -> None:
    bare = callback_result(json.dumps(answer).encode())
    wrapped = callback_result(json.dumps({"Response": answer}).encode())
    assert bare == wrapped
    if bare is not None:
        assert bare.data_id


@SETTINGS
@given(model("CreateImageModerationAsyncTaskResponse"))
def test_any_async_answer_is_read(answer: dict[str, Any]) -> None:
    accepted = parse(AsyncTaskResponse, answer)
    assert isinstance(accepted.data_id, str)


def _aliases(ours: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in ours.model_fields.items()}


def test_our_models_read_every_field_the_sdk_declares() -> None:
    pairs: dict[str, type[BaseModel]] = {
        "ImageModerationResponse": ImageModerationResponse,
        "CreateImageModerationAsyncTaskResponse": AsyncTaskResponse,
    }
    for name in (
        "LabelResult", "LabelDetailItem", "ObjectResult", "ObjectDetail", "OcrResult",
        "OcrTextDetail", "OcrHitInfo", "Positions", "LibResult", "LibDetail", "Location",
        "RecognitionResult", "RecognitionTag",
    ):  # fmt: skip
        pairs[name] = getattr(ims_models, name)
    for name, ours in pairs.items():
        missing = set(sdk_fields(name)) - _aliases(ours)
        assert not missing, (name, missing)
