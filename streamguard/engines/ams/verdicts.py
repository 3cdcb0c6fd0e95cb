"""AMS results → the same ``Verdict`` the local engine returns (labels, transcript, keywords)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streamguard.core.excerpt import Excerpt
from streamguard.core.verdict import KeywordHit, Outcome, Suggestion, Verdict
from streamguard.tencentcloud.models import (
    AudioResult,
    SyncTaskResponse,
    TaskData,
    TaskDetail,
    TextResult,
)

__all__ = [
    "ENGINE_NAME",
    "ENGINE_VERSION",
    "failed",
    "from_detail",
    "from_json",
    "from_summary",
    "from_sync",
    "remapped",
    "suggestion",
]

ENGINE_NAME = "ams"
ENGINE_VERSION = "2020-12-29"
_SEVERITY = {Suggestion.PASS: 0, Suggestion.REVIEW: 1, Suggestion.BLOCK: 2}


def suggestion(value: str) -> Suggestion:
    """Parse AMS's suggestion leniently (one doc spells Review as ``Reveiw``)."""
    lowered = value.strip().lower()
    if lowered.startswith("block"):
        return Suggestion.BLOCK
    if lowered.startswith(("rev", "reiv")):
        return Suggestion.REVIEW
    return Suggestion.PASS


def _keywords(
    results: list[TextResult],
    text: str,
    text_from: int,
    time_start: float | None,
    time_end: float | None,
) -> list[KeywordHit]:
    hits = []
    lowered = text.lower()
    for result in results:
        for keyword in result.keywords:
            start = lowered.find(keyword.lower(), text_from)
            hits.append(
                KeywordHit(
                    keyword=keyword,
                    library_id=result.lib_id,
                    library_name=result.lib_name,
                    label=result.label,
                    sub_label=result.sub_label,
                    score=result.score,
                    text_start=start,
                    text_end=start + len(keyword) if start >= 0 else -1,
                    time_start=time_start,
                    time_end=time_end,
                )
            )
    return hits


def _slice_json(offset: float, result: AudioResult) -> dict[str, Any]:
    return {
        "offset": offset,
        "duration": result.duration / 1000,
        "label": result.label,
        "sub_label": result.sub_label,
        "suggestion": result.suggestion,
        "score": result.score,
        "hit": bool(result.hit_flag),
        "libraries": [r.lib_id for r in result.text_results if r.lib_id],
        "moan": [
            {"score": m.score, "start": m.start_time, "end": m.end_time, "sub_label": m.sub_label}
            for m in result.moan_results
        ],
    }


def from_detail(segment_id: str, detail: TaskDetail) -> Verdict:
    """The verdict of a FINISH task: every slice folded into one, offsets kept in details."""
    slices = sorted(detail.audio_segments, key=lambda s: s.offset_seconds)
    texts: list[str] = []
    keywords: list[KeywordHit] = []
    length = 0
    top: AudioResult | None = None
    for piece in slices:
        result = piece.result
        if result.text:
            if texts:
                length += 1  # the joining space
            text_from = length
            texts.append(result.text)
            length += len(result.text)
        else:
            text_from = length
        joined = " ".join(texts)
        end = piece.offset_seconds + result.duration / 1000
        keywords += _keywords(result.text_results, joined, text_from, piece.offset_seconds, end)
        if result.hit_flag and (
            top is None
            or (_SEVERITY[suggestion(result.suggestion)], result.score)
            > (_SEVERITY[suggestion(top.suggestion)], top.score)
        ):
            top = result
    text = " ".join(texts) or detail.audio_text
    overall = suggestion(detail.suggestion) if detail.suggestion else Suggestion.PASS
    if top is not None and _SEVERITY[suggestion(top.suggestion)] > _SEVERITY[overall]:
        overall = suggestion(top.suggestion)
    label = detail.label or (top.label if top else "Normal")
    scores = [lab.score for lab in detail.labels if lab.label == label]
    return Verdict(
        segment_id=segment_id,
        outcome=Outcome.MODERATED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        suggestion=overall,
        label=label,
        sub_label=top.sub_label if top else "",
        score=max(scores) if scores else (top.score if top else 0),
        hit=top is not None or overall is not Suggestion.PASS,
        text=text,
        keywords=tuple(keywords),
        task_id=detail.task_id,
        details={
            "source": "DescribeTaskDetail",
            "labels": [lab.model_dump() for lab in detail.labels],
            "slices": [_slice_json(p.offset_seconds, p.result) for p in slices],
        },
    )


def from_summary(segment_id: str, data: TaskData) -> Verdict:
    """A Pass verdict from a DescribeTasks entry (no transcript: AMS found nothing)."""
    return Verdict(
        segment_id=segment_id,
        outcome=Outcome.MODERATED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        suggestion=suggestion(data.suggestion),
        label="Normal",
        task_id=data.task_id,
        details={"source": "DescribeTasks", "labels": [lab.model_dump() for lab in data.labels]},
    )


def from_sync(segment_id: str, answer: SyncTaskResponse) -> Verdict:
    """The verdict of a CreateAudioModerationSyncTask answer."""
    keywords = _keywords(answer.text_results, answer.asr_text, 0, 0.0, answer.duration / 1000)
    verdict_suggestion = suggestion(answer.suggestion)
    return Verdict(
        segment_id=segment_id,
        outcome=Outcome.MODERATED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        suggestion=verdict_suggestion,
        label=answer.label or "Normal",
        sub_label=answer.sub_label,
        score=answer.score,
        hit=bool(answer.hit_flag) or verdict_suggestion is not Suggestion.PASS,
        text=answer.asr_text,
        keywords=tuple(keywords),
        details={"source": "CreateAudioModerationSyncTask", "request_id": answer.request_id},
    )


def failed(segment_id: str, reason: str, task_id: str | None = None) -> Verdict:
    """A segment AMS could not judge, and why."""
    return Verdict(
        segment_id=segment_id,
        outcome=Outcome.FAILED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        reason=reason,
        task_id=task_id,
    )


def from_json(data: dict[str, Any]) -> Verdict:
    """Rebuild a verdict stored with ``Verdict.to_json()``."""
    return Verdict(
        segment_id=data["segment_id"],
        outcome=Outcome(data["outcome"]),
        engine=data["engine"],
        engine_version=data["engine_version"],
        suggestion=Suggestion(data["suggestion"]),
        label=data["label"],
        sub_label=data["sub_label"],
        score=data["score"],
        hit=data["hit"],
        text=data["text"],
        keywords=tuple(KeywordHit(**k) for k in data["keywords"]),
        unsupported=tuple(data["unsupported"]),
        reason=data["reason"],
        task_id=data["task_id"],
        details=data["details"],
    )


def remapped(verdict: Verdict, excerpt: Excerpt) -> Verdict:
    """Times of a verdict on an excerpt's clip, made relative to the segment."""
    if excerpt.pieces == ((0.0, excerpt.duration),):
        return verdict
    keywords = tuple(
        replace(
            hit,
            time_start=None if hit.time_start is None else excerpt.segment_time(hit.time_start),
            time_end=None if hit.time_end is None else excerpt.segment_time(hit.time_end, end=True),
        )
        for hit in verdict.keywords
    )
    details = dict(verdict.details)
    if "slices" in details:
        details["slices"] = [
            {**s, "offset": excerpt.segment_time(s["offset"])} for s in details["slices"]
        ]
    details["excerpt"] = [list(piece) for piece in excerpt.pieces]
    return replace(verdict, keywords=keywords, details=details)
