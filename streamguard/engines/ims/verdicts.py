"""IMS answers → our ``Verdict`` (IMS spec §3.1, §6), never failing open.

A picture passes only when everything IMS said passes: the top-level ``Suggestion`` and
every result's (``LabelResults``, ``ObjectResults``, ``OcrResults``, ``LibResults``) must
each be exactly ``Pass`` (any case, blanks ignored) or empty; a ``Block…`` anywhere blocks;
anything else (``Review``, a misspelling, a word we do not know) is Review; an answer that
says nothing at all is Review. The label is the top-level ``Label`` when it carries the
verdict's severity, else that of the severest result, else ``Unknown``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.tencentcloud.ims_models import ImageModerationResponse

__all__ = ["ENGINE_NAME", "ENGINE_VERSION", "UNKNOWN_LABEL", "failed", "from_answer", "said"]

ENGINE_NAME = "ims"
ENGINE_VERSION = "2020-12-29"
UNKNOWN_LABEL = "Unknown"
_SEVERITY = {Suggestion.PASS: 0, Suggestion.REVIEW: 1, Suggestion.BLOCK: 2}


def said(value: str) -> Suggestion | None:
    """What a suggestion says: None when empty, Pass only for Pass, Block for Block…,
    Review for anything else."""
    lowered = value.strip().lower()
    if not lowered:
        return None
    if lowered == "pass":
        return Suggestion.PASS
    if lowered.startswith("block"):
        return Suggestion.BLOCK
    return Suggestion.REVIEW


@dataclass(frozen=True, slots=True)
class _Finding:
    """One thing IMS said, flattened: where, what, how sure."""

    where: str
    suggestion: Suggestion
    label: str
    sub_label: str
    score: int


def _findings(answer: ImageModerationResponse) -> list[_Finding]:
    results: Iterable[tuple[str, Any]] = [
        *(("label", r) for r in answer.label_results),
        *(("object", r) for r in answer.object_results),
        *(("ocr", r) for r in answer.ocr_results),
        *(("library", r) for r in answer.lib_results),
    ]
    found = []
    for where, result in results:
        suggestion = said(result.suggestion)
        if suggestion is not None:
            label = result.label or result.scene
            found.append(_Finding(where, suggestion, label, result.sub_label, result.score))
    return found


def _details(answer: ImageModerationResponse, findings: list[_Finding]) -> dict[str, Any]:
    scores: dict[str, int] = {}
    for finding in findings:
        if finding.label:
            scores[finding.label] = max(scores.get(finding.label, 0), finding.score)
    return {
        "scores": scores,
        "results": [[f.where, f.suggestion.value, f.label, f.sub_label, f.score] for f in findings],
        "text": " ".join(r.text for r in answer.ocr_results if r.text)[:500],
        "objects": sorted({name for r in answer.object_results for name in r.names}),
        "data_id": answer.data_id,
        "biz_type": answer.biz_type,
        "said": answer.suggestion,
    }


def from_answer(picture_id: str, answer: ImageModerationResponse) -> Verdict:
    """The verdict on a picture from IMS's answer (sync, or an async task's callback)."""
    findings = _findings(answer)
    top = said(answer.suggestion)
    voices = [s for s in [top, *(f.suggestion for f in findings)] if s is not None]
    suggestion = max(voices, key=_SEVERITY.__getitem__) if voices else Suggestion.REVIEW
    label, sub_label, score = "Normal", "", 0
    if suggestion is not Suggestion.PASS:
        label, sub_label, score = UNKNOWN_LABEL, "", 0
        top_label = answer.label.strip()
        severest = [f for f in findings if f.suggestion is suggestion]
        if top is suggestion and top_label and top_label.lower() != "normal":
            label, sub_label, score = top_label, answer.sub_label, answer.score
        elif severest:
            best = max(severest, key=lambda f: f.score)
            label, sub_label, score = best.label or UNKNOWN_LABEL, best.sub_label, best.score
    return Verdict(
        segment_id=picture_id,
        outcome=Outcome.MODERATED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        suggestion=suggestion,
        label=label,
        sub_label=sub_label,
        score=max(0, min(100, score)),
        hit=suggestion is not Suggestion.PASS,
        task_id=answer.request_id or None,
        reason="" if voices else "IMS said nothing: reviewed, never passed",
        details=_details(answer, findings),
    )


def failed(picture_id: str, reason: str) -> Verdict:
    """The verdict on a picture IMS could not judge (``reason`` names the error)."""
    return Verdict(
        segment_id=picture_id,
        outcome=Outcome.FAILED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        reason=reason,
    )
