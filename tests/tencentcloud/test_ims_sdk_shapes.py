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
import re
from typing import Any

import hypothesis.strategies as st
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

_TYPE = re.compile(r":type (\w+): (.+)")
_CLASS = re.compile(r"models\.(\w+)`")
MAX_DEPTH = 4
SUGGESTIONS = st.sampled_from(
    ["Pass", "Block", "Review", "Pass", "Reveiw", "Block", "Delete", " Block ", "", "pass", "PASS"]
)
NUMBERS_AS_TEXT = st.sampled_from(["97.5", "12", "-1", "1e3", "NaN", "inf", "", "abc", " 7 "])
RESULT_ARRAYS = ("LabelResults", "ObjectResults", "OcrResults", "LibResults")


def sdk_fields(name: str) -> dict[str, str]:
    """Field name → the SDK's declared type, for one model class of the SDK."""
    doc = getattr(sdk, name).__init__.__doc__ or ""
    return {match[1]: match[2].strip() for match in _TYPE.finditer(doc)}


def _scalar(kind: str, field: str) -> st.SearchStrategy[Any]:
    if field == "Suggestion":
        return SUGGESTIONS
    if kind == "int":
        return st.integers(-10, 200)
    if kind == "float":
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    return st.text(max_size=6)


def _neighbour(kind: str) -> st.SearchStrategy[Any]:
    if kind in ("int", "float"):
        return st.one_of(NUMBERS_AS_TEXT, st.floats(-1e3, 1e3), st.booleans())
    if kind == "str":
        return st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.just([]), st.just({}))
    return st.one_of(st.text(max_size=4), st.integers(), st.just([]), st.just({}))


def value(kind: str, field: str, depth: int) -> st.SearchStrategy[Any]:
    """A value for a field the SDK declares as ``kind``: proper, null or neighbouring."""
    if depth > MAX_DEPTH:
        return st.none()
    if kind.startswith("list of "):
        inner = kind.removeprefix("list of ")
        proper: st.SearchStrategy[Any] = st.lists(value(inner, field, depth + 1), max_size=3)
        neighbour = st.one_of(value(inner, field, depth + 1), st.text(max_size=8))
    elif (found := _CLASS.search(kind)) or hasattr(sdk, kind):
        name = found[1] if found else kind
        proper = model(name, depth + 1)
        neighbour = st.one_of(st.lists(model(name, depth + 2), max_size=2), st.text(max_size=4))
    else:
        proper = _scalar(kind, field)
        neighbour = _neighbour(kind)
    return st.one_of(proper, proper, proper, proper, st.none(), neighbour)


_ABSENT = object()


def model(name: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object shaped by the SDK model ``name``; any field may be absent."""
    fields = {
        field: st.one_of(value(kind, field, depth), value(kind, field, depth), st.just(_ABSENT))
        for field, kind in sdk_fields(name).items()
    }
    return st.fixed_dictionaries(fields).map(
        lambda drawn: {k: v for k, v in drawn.items() if v is not _ABSENT}
    )


def _says(raw: Any) -> Suggestion | None:
    """What a raw suggestion clearly holds, judged independently of the code under test."""
    if not isinstance(raw, str):
        return None
    lowered = raw.strip().lower()
    if lowered.startswith("block"):
        return Suggestion.BLOCK
    if lowered in ("review", "reveiw"):
        return Suggestion.REVIEW
    return None


def _objects(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, dict):
        return [raw]
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []


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
