"""AMS results → the same ``Verdict`` the local engine returns (labels, transcript, keywords).

Never fail open: a suggestion is Pass only when AMS says exactly that; anything else it
says (a misspelling such as ``Reveiw``, ``Delete``, text we do not know) is Review. A task's
suggestion is the most severe of what its detail says anywhere (the task, its ``Labels``,
its slices and their text, moan, song and AIGC results); a FINISH detail that says nothing at all
is Review, and so is a Pass over speech in a language AMS does not judge (``languages``).
Its label is the task's ``Label``, else that of its most severe ``Labels`` entry, else of
its most severe slice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import Any

from streamguard.core.excerpt import Excerpt
from streamguard.core.verdict import KeywordHit, Outcome, Suggestion, Verdict
from streamguard.engines.ams.languages import CHINESE, Heard, heard_languages, in_slices
from streamguard.tencentcloud.models import (
    AudioResult,
    AudioSegment,
    SyncTaskResponse,
    TaskData,
    TaskDetail,
    TaskLabel,
    TextResult,
)

__all__ = [
    "ENGINE_NAME",
    "ENGINE_VERSION",
    "failed",
    "from_detail",
    "from_json",
    "from_slice",
    "from_summary",
    "from_sync",
    "remapped",
    "says_pass",
    "suggestion",
    "summary_passes",
]

ENGINE_NAME = "ams"
ENGINE_VERSION = "2020-12-29"
UNKNOWN_LABEL = "Unknown"
"""The label of a verdict AMS did not pass but gave no label for."""
_SEVERITY = {Suggestion.PASS: 0, Suggestion.REVIEW: 1, Suggestion.BLOCK: 2}


def says_pass(value: str) -> bool:
    """True when AMS's suggestion is exactly Pass (any case, surrounding blanks ignored)."""
    return value.strip().lower() == "pass"


def _said(value: str) -> Suggestion | None:
    """What a suggestion says; None when it is empty (AMS said nothing)."""
    lowered = value.strip().lower()
    if not lowered:
        return None
    if lowered == "pass":
        return Suggestion.PASS
    if lowered.startswith("block"):
        return Suggestion.BLOCK
    return Suggestion.REVIEW  # Review, its misspelling "Reveiw", and anything unknown


def suggestion(value: str) -> Suggestion:
    """AMS's suggestion, failing closed: Pass only for Pass, Block for Block, else Review."""
    return _said(value) or Suggestion.REVIEW


def _severest(values: Iterable[str]) -> Suggestion | None:
    said = [s for s in map(_said, values) if s is not None]
    return max(said, key=_SEVERITY.__getitem__) if said else None


def _rank(value: str, score: int) -> tuple[int, int]:
    return _SEVERITY[suggestion(value)], score


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


def _families(result: AudioResult) -> dict[str, Any]:
    """The result families the verdict does not fold in, kept for whoever reads it."""
    return {
        "url": result.url,
        "languages": [r.model_dump() for r in result.language_results],
        "speakers": [r.model_dump() for r in result.speaker_results],
        "recognition": [r.model_dump() for r in result.recognition_results],
        "songs": [r.model_dump() for r in result.label_results],
        "aigc": [r.model_dump() for r in result.aigc_recognition_results],
        "hits": [
            {
                "lib_id": r.lib_id,
                "keywords": r.keywords,
                "infos": [i.model_dump() for i in r.hit_infos],
            }
            for r in result.text_results
            if r.hit_infos
        ],
    }


def _slice_json(offset: float, result: AudioResult | None) -> dict[str, Any]:
    if result is None:
        return {"offset": offset, "result": None}
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
        **_families(result),
    }


def _slice_says(result: AudioResult | None) -> str:
    """A slice's suggestion; a hit that names none is to be reviewed."""
    if result is None:
        return ""
    return result.suggestion or ("Review" if result.hit_flag else "")


def _nested_says(result: AudioResult | None) -> list[str]:
    """What a slice's own findings suggest (text, moan, songs: a song's suggestion counts
    only when it is a word, the SDK types it as a number)."""
    if result is None:
        return []
    said = [r.suggestion for r in result.text_results]
    said += [r.suggestion for r in result.moan_results]
    said += [r.suggestion for r in result.aigc_recognition_results]
    said += [r.suggestion for r in result.label_results if not r.suggestion.strip().isdigit()]
    return said


def _top_slice(slices: list[AudioSegment]) -> AudioResult | None:
    """The most severe slice that hit or did not pass (then the highest score)."""
    flagged = [
        p.result
        for p in slices
        if p.result is not None
        and (p.result.hit_flag or _said(_slice_says(p.result)) not in (None, Suggestion.PASS))
    ]
    return max(flagged, key=lambda r: _rank(_slice_says(r), r.score), default=None)


def _transcript(slices: list[AudioSegment]) -> tuple[str, list[KeywordHit]]:
    """The slices' texts joined by spaces, and their keyword hits located in it."""
    texts: list[str] = []
    keywords: list[KeywordHit] = []
    length = 0
    for piece in slices:
        result = piece.result
        if result is None:
            continue
        if result.text:
            if texts:
                length += 1  # the joining space
            text_from = length
            texts.append(result.text)
            length += len(result.text)
        else:
            text_from = length
        end = piece.offset_seconds + result.duration / 1000
        joined = " ".join(texts)
        keywords += _keywords(result.text_results, joined, text_from, piece.offset_seconds, end)
    return " ".join(texts), keywords


def _label(detail: TaskDetail, top: AudioResult | None, overall: Suggestion) -> TaskLabel:
    """The entry naming the task's label: the task's own, else its most severe."""
    entries = [lab for lab in detail.labels if lab.label]
    if detail.label:
        named = [lab for lab in entries if lab.label == detail.label]
        return max(named, key=lambda lab: lab.score) if named else TaskLabel(label=detail.label)
    if entries:
        return max(entries, key=lambda lab: _rank(lab.suggestion, lab.score))
    if top is not None and top.label:
        return TaskLabel(label=top.label, sub_label=top.sub_label, score=top.score)
    return TaskLabel(label="Normal" if overall is Suggestion.PASS else UNKNOWN_LABEL)


def _task_says(detail: TaskDetail, slices: list[AudioSegment]) -> Suggestion | None:
    """The most severe suggestion anywhere in a detail; None when it says none at all."""
    return _severest(
        [
            detail.suggestion,
            *(lab.suggestion for lab in detail.labels),
            *(_slice_says(p.result) for p in slices),
            *(said for p in slices for said in _nested_says(p.result)),
        ]
    )


def _unjudged(said: Suggestion, heard: Heard) -> tuple[Suggestion, str]:
    """The suggestion and the reason, once the languages AMS did not judge are counted:
    a Pass over speech AMS did not follow is Review."""
    if not heard.unsupported:
        return said, ""
    reason = f"AMS does not judge {', '.join(heard.unsupported)} speech"
    if said is Suggestion.PASS:
        return Suggestion.REVIEW, reason + "; its Pass is not a judgement"
    return said, reason


def from_detail(
    segment_id: str, detail: TaskDetail, languages: Collection[str] = CHINESE
) -> Verdict:
    """The verdict of a FINISH task: every slice folded into one, offsets kept in details.

    Speech in a language AMS does not judge (not in ``languages``) is listed in
    ``unsupported``, and a Pass over it becomes Review with the reason: AMS did not follow it.
    """
    slices = sorted(detail.audio_segments, key=lambda s: s.offset_seconds)
    text, keywords = _transcript(slices)
    top = _top_slice(slices)
    said = _task_says(detail, slices)
    overall = said or Suggestion.REVIEW  # a finished task that says nothing is not a Pass
    label = _label(detail, top, overall)
    hit = top is not None or overall is not Suggestion.PASS
    heard = heard_languages(in_slices(slices), languages)
    overall, reason = _unjudged(overall, heard)
    details: dict[str, Any] = {
        "source": "DescribeTaskDetail",
        "labels": [lab.model_dump() for lab in detail.labels],
        "slices": [_slice_json(p.offset_seconds, p.result) for p in slices],
        "languages": list(heard.languages),
    }
    if said is None:
        details["suggestion_missing"] = True
    return Verdict(
        segment_id=segment_id,
        outcome=Outcome.MODERATED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        suggestion=overall,
        label=label.label,
        sub_label=label.sub_label or (top.sub_label if top else ""),
        score=label.score or (top.score if top else 0),
        hit=hit,
        text=text or detail.audio_text,
        keywords=tuple(keywords),
        unsupported=(heard.complaint,) if heard.complaint else (),
        reason=reason,
        task_id=detail.task_id,
        details=details,
    )


def from_slice(
    segment_id: str, task_id: str, piece: AudioSegment, languages: Collection[str] = CHINESE
) -> Verdict:
    """The verdict on one slice of a live task (its own result only: a live task's overall
    suggestion and labels cover every slice so far). No result is a failure, not a Pass."""
    if piece.result is None:
        reason = f"AMS sent no result for the slice at {piece.offset_time} of live task {task_id}"
        return failed(segment_id, reason, task_id)
    alone = AudioSegment(offset_time="0", result=piece.result)
    detail = TaskDetail(task_id=task_id, status="FINISH", audio_segments=[alone])
    verdict = from_detail(segment_id, detail, languages)
    details = {**verdict.details, "source": "LIVE_AUDIO", "offset_time": piece.offset_time}
    return replace(verdict, details=details)


def summary_passes(data: TaskData) -> bool:
    """True when a DescribeTasks entry settles its task as Pass without the detail: FINISH,
    exactly Pass, and no label that says otherwise."""
    return (
        data.status == "FINISH"
        and says_pass(data.suggestion)
        and all(says_pass(lab.suggestion) for lab in data.labels)
    )


def from_summary(segment_id: str, data: TaskData) -> Verdict:
    """A Pass verdict from a DescribeTasks entry that says exactly Pass and names no label
    (no transcript: AMS found nothing). Any other summary needs the task's detail."""
    return Verdict(
        segment_id=segment_id,
        outcome=Outcome.MODERATED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        suggestion=Suggestion.PASS,
        label="Normal",
        task_id=data.task_id,
        details={"source": "DescribeTasks", "labels": [lab.model_dump() for lab in data.labels]},
    )


def from_sync(
    segment_id: str, answer: SyncTaskResponse, languages: Collection[str] = CHINESE
) -> Verdict:
    """The verdict of a CreateAudioModerationSyncTask answer (languages as ``from_detail``)."""
    keywords = _keywords(answer.text_results, answer.asr_text, 0, 0.0, answer.duration / 1000)
    nested = [r.suggestion for r in answer.text_results]
    nested += [r.suggestion for r in answer.moan_results]
    said = _severest([answer.suggestion, *nested]) or Suggestion.REVIEW
    heard = heard_languages(answer.language_results, languages)
    verdict_suggestion, reason = _unjudged(said, heard)
    return Verdict(
        segment_id=segment_id,
        outcome=Outcome.MODERATED,
        engine=ENGINE_NAME,
        engine_version=ENGINE_VERSION,
        suggestion=verdict_suggestion,
        label=answer.label or ("Normal" if said is Suggestion.PASS else UNKNOWN_LABEL),
        sub_label=answer.sub_label,
        score=answer.score,
        hit=bool(answer.hit_flag) or said is not Suggestion.PASS,
        text=answer.asr_text,
        keywords=tuple(keywords),
        unsupported=(heard.complaint,) if heard.complaint else (),
        reason=reason,
        details={
            "source": "CreateAudioModerationSyncTask",
            "request_id": answer.request_id,
            "languages": list(heard.languages),
        },
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
