"""Hypothesis strategies drawn from an official Tencent Cloud SDK's models (the
``:type Name: T`` lines of each model's docstring): every field present, absent, null or of a
neighbouring type (a number as text, text as a number, an object or list where the other
belongs), suggestions from the documented values plus misspellings and unknown ones. Shared
by the AMS and IMS property tests."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import hypothesis.strategies as st

from streamguard.core.verdict import Suggestion

__all__ = ["CLASS", "NUMBERS_AS_TEXT", "SUGGESTIONS", "SdkShapes", "objects", "says"]

_TYPE = re.compile(r":type (\w+): (.+)")
CLASS = re.compile(r"models\.(\w+)`")
"""A docstring type naming another model of the SDK."""
SUGGESTIONS = st.sampled_from(
    ["Pass", "Block", "Review", "Pass", "Reveiw", "Block", "Delete", " Block ", "", "pass", "PASS"]
)
NUMBERS_AS_TEXT = st.sampled_from(["97.5", "12", "-1", "1e3", "NaN", "inf", "", "abc", " 7 "])
_ABSENT = object()


class SdkShapes:
    """Strategies for the models of one SDK module (e.g. ``tencentcloud.ams.v20201229.models``)."""

    def __init__(self, sdk: ModuleType, *, max_depth: int = 4, list_size: int = 4) -> None:
        self.sdk = sdk
        self.max_depth = max_depth
        self.list_size = list_size

    def fields(self, name: str) -> dict[str, str]:
        """Field name → the SDK's declared type, for one model class of the SDK."""
        doc = getattr(self.sdk, name).__init__.__doc__ or ""
        return {match[1]: match[2].strip() for match in _TYPE.finditer(doc)}

    def model(self, name: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
        """A JSON object shaped by the SDK model ``name``; any field may be absent."""
        fields = {
            field: st.one_of(
                self.value(kind, field, depth), self.value(kind, field, depth), st.just(_ABSENT)
            )
            for field, kind in self.fields(name).items()
        }
        return st.fixed_dictionaries(fields).map(
            lambda drawn: {k: v for k, v in drawn.items() if v is not _ABSENT}
        )

    def value(self, kind: str, field: str, depth: int) -> st.SearchStrategy[Any]:
        """A value for a field the SDK declares as ``kind``: proper, null or neighbouring."""
        if depth > self.max_depth:
            return st.none()
        if kind.startswith("list of "):
            inner = kind.removeprefix("list of ")
            item = self.value(inner, field, depth + 1)
            proper: st.SearchStrategy[Any] = st.lists(item, max_size=self.list_size)
            neighbour = st.one_of(item, st.text(max_size=8))
        elif (found := CLASS.search(kind)) or hasattr(self.sdk, kind):
            name = found[1] if found else kind
            proper = self.model(name, depth + 1)
            neighbour = st.one_of(
                st.lists(self.model(name, depth + 2), max_size=2), st.text(max_size=4)
            )
        else:
            proper = _scalar(kind, field)
            neighbour = _neighbour(kind)
        # Mostly proper, so that the shapes that matter (several labels, several slices) come up.
        return st.one_of(proper, proper, proper, proper, st.none(), neighbour)


def _scalar(kind: str, field: str) -> st.SearchStrategy[Any]:
    if field == "Suggestion":
        return SUGGESTIONS
    if kind == "int":
        return st.integers(-10, 200)
    if kind == "float":
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == "bool":
        return st.booleans()
    return st.text(max_size=6)


def _neighbour(kind: str) -> st.SearchStrategy[Any]:
    """A value of a type next to ``kind``, as a loosely typed serializer might send."""
    if kind in ("int", "float"):
        return st.one_of(NUMBERS_AS_TEXT, st.floats(-1e3, 1e3), st.booleans())
    if kind == "str":
        return st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.just([]), st.just({}))
    return st.one_of(st.text(max_size=4), st.integers(), st.just([]), st.just({}))


def says(raw: Any) -> Suggestion | None:
    """What a raw suggestion clearly holds, judged independently of the code under test."""
    if not isinstance(raw, str):
        return None
    lowered = raw.strip().lower()
    if lowered.startswith("block"):
        return Suggestion.BLOCK
    if lowered in ("review", "reveiw"):
        return Suggestion.REVIEW
    return None


def objects(raw: Any) -> list[dict[str, Any]]:
    """The objects of a field that should be a list of objects (or one object)."""
    if isinstance(raw, dict):
        return [raw]
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
