"""Odd but allowed shapes of answer (``Shape``), made from the emulator's well-formed ones.

The real service may send any field null, numbers of another type, or suggestions we do not
know (its SDK's models allow it); these rewrite a copy of an answer or callback body, so
that tests and the benchmark meet them on purpose.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from typing import Any

from streamguard.emulator.faults import Shape

__all__ = ["callback_body", "create_answer", "detail_answer", "tasks_answer"]

_SPELLINGS = {"Block": "Delete", "Review": "Reveiw"}


def _each_object(value: Any, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to every JSON object within ``value``, depth first."""
    if isinstance(value, dict):
        for item in value.values():
            _each_object(item, change)
        change(value)
    elif isinstance(value, list):
        for item in value:
            _each_object(item, change)


def _fractional(obj: dict[str, Any]) -> None:
    if isinstance(obj.get("Score"), int):
        obj["Score"] += 0.5


def _misspelt(obj: dict[str, Any]) -> None:
    suggestion = obj.get("Suggestion")
    if isinstance(suggestion, str):
        obj["Suggestion"] = _SPELLINGS.get(suggestion, suggestion)


def _odd_types(obj: dict[str, Any]) -> None:
    if isinstance(obj.get("OffsetTime"), str):
        obj["OffsetTime"] = float(obj["OffsetTime"])
    if isinstance(obj.get("HitFlag"), int):
        obj["HitFlag"] = str(obj["HitFlag"])


def _everywhere(answer: dict[str, Any], shapes: Collection[Shape]) -> dict[str, Any]:
    for shape, change in (
        (Shape.FRACTIONAL_SCORES, _fractional),
        (Shape.UNKNOWN_SUGGESTIONS, _misspelt),
        (Shape.ODD_TYPES, _odd_types),
    ):
        if shape in shapes:
            _each_object(answer, change)
    return answer


def detail_answer(answer: dict[str, Any], shapes: Collection[Shape]) -> dict[str, Any]:
    """A DescribeTaskDetail answer (or callback body) in ``shapes``."""
    answer = copy.deepcopy(answer)  # its slices are the task's own
    if Shape.NULL_NESTED in shapes:
        answer.update(MediaInfo=None, InputInfo=None, Labels=None)
        for segment in answer.get("AudioSegments") or []:
            segment["Result"] = None
    return _everywhere(answer, shapes)


def tasks_answer(answer: dict[str, Any], shapes: Collection[Shape]) -> dict[str, Any]:
    """A DescribeTasks answer in ``shapes``."""
    answer = copy.deepcopy(answer)
    if Shape.EMPTY_SUMMARIES in shapes:
        for task in answer.get("Data") or []:
            if task.get("Status") == "FINISH":
                task.update(Suggestion="", Labels=None)
    if Shape.ODD_TYPES in shapes:
        answer["Total"] = "about " + str(answer.get("Total"))
    return _everywhere(answer, shapes)


def create_answer(answer: dict[str, Any], shapes: Collection[Shape]) -> dict[str, Any]:
    """A CreateAudioModerationTask answer in ``shapes``: its tasks are created all the same."""
    if Shape.ODD_TYPES in shapes:
        answer["Results"] = "notalist"
    return answer


def callback_body(detail: dict[str, Any], shapes: Collection[Shape]) -> dict[str, Any]:
    """A callback's body in ``shapes``."""
    body = detail_answer(detail, shapes)
    return {"Response": body} if Shape.WRAPPED_CALLBACKS in shapes else body
