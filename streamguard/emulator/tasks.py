"""Emulated AMS tasks: their state machine and the shapes they answer with (spec §3.2, §3.6).

A task moves PENDING → RUNNING → FINISH | ERROR, or to CANCELLED from PENDING/RUNNING.
Each judged slice becomes one ``AudioSegments`` entry built from an engine ``Verdict``.
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.emulator.faults import TaskFault

__all__ = ["TERMINAL", "EmulatedTask", "audio_result", "iso", "language_results", "new_task_id"]

TERMINAL = frozenset({"FINISH", "ERROR", "CANCELLED"})
"""Statuses a task never leaves."""

_SEVERITY = {Suggestion.PASS.value: 0, Suggestion.REVIEW.value: 1, Suggestion.BLOCK.value: 2}
_ALPHABET = string.ascii_letters + string.digits


def new_task_id(kind: str = "audio") -> str:
    """A task id shaped like the service's (``w-audio-<alnum>``)."""
    return f"w-{kind}-" + "".join(secrets.choice(_ALPHABET) for _ in range(18))


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as AMS writes times."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def language_results(verdict: Verdict, duration: float, language: str) -> list[dict[str, Any]]:
    """The ``LanguageResults`` of a slice: ``language`` over the whole slice when it had
    speech; ``auto`` is the language the engine's transcript names; "" reports none."""
    if not language or verdict.outcome is not Outcome.MODERATED:
        return []
    if language == "auto":
        transcript = verdict.details.get("transcript")
        found = transcript.get("language") if isinstance(transcript, dict) else None
        if not isinstance(found, str) or not found:
            return []
        language = found
    return [{"Label": language, "Score": 90, "StartTime": 0.0, "EndTime": round(duration, 3)}]


def audio_result(verdict: Verdict, duration: float, language: str = "") -> dict[str, Any]:
    """The ``AudioResult`` of one slice judged by an engine (``language``: as
    ``language_results``)."""
    text_results: dict[tuple[str, str, str], dict[str, Any]] = {}
    for hit in verdict.keywords:
        key = (hit.library_id, hit.label, hit.sub_label)
        entry = text_results.setdefault(
            key,
            {
                "Label": hit.label,
                "Keywords": [],
                "LibId": hit.library_id,
                "LibName": hit.library_name,
                "Score": 0,
                "Suggestion": verdict.suggestion.value,
                "LibType": 2,
                "SubLabel": hit.sub_label,
                "HitInfos": [],
            },
        )
        if hit.keyword not in entry["Keywords"]:
            entry["Keywords"].append(hit.keyword)
        entry["Score"] = max(entry["Score"], hit.score)
        entry["HitInfos"].append(
            {
                "Type": "Keyword",
                "Keyword": hit.keyword,
                "LibName": hit.library_name,
                "Positions": [{"Start": hit.text_start, "End": hit.text_end}],
            }
        )
    extra = ""
    if verdict.unsupported or verdict.outcome is not Outcome.MODERATED:
        extra = f"outcome={verdict.outcome.value}; unsupported={','.join(verdict.unsupported)}"
    return {
        "HitFlag": 1 if verdict.hit else 0,
        "Label": verdict.label or "Normal",
        "Suggestion": verdict.suggestion.value,
        "Score": verdict.score,
        "Text": verdict.text,
        "Url": "",
        "Duration": str(round(duration * 1000)),
        "Extra": extra,
        "TextResults": list(text_results.values()),
        "MoanResults": [],
        "LanguageResults": language_results(verdict, duration, language),
        "SubLabel": verdict.sub_label,
        "RecognitionResults": [],
        "SpeakerResults": [],
        "LabelResults": [],
        "TravelResults": [],
        "SubTag": "",
        "SubTagCode": "",
        "HitType": "text_rule" if verdict.keywords else "",
        "Sentences": [],
        "RequestId": str(uuid.uuid4()),
    }


@dataclass
class EmulatedTask:
    """One task the emulator accepted, and everything it has learned about it so far."""

    task_id: str
    data_id: str
    name: str
    biz_type: str
    type: str
    url: str
    secret_id: str
    created_at: datetime
    seed: str = ""
    callback_url: str = ""
    fault: TaskFault | None = None
    seq: int = 0
    """The task's place in the order of creation (DescribeTasks pages by it)."""
    slice_seconds: int = 30
    """The console's slice length when the task was created: ``MediaInfo.Duration``."""
    status: str = "PENDING"
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    segments: list[dict[str, Any]] = field(default_factory=list)
    error_type: str = ""
    error_description: str = ""
    duration: float = 0.0

    def move(self, status: str, now: datetime) -> None:
        """Change status; a terminal task stays where it is."""
        if self.status in TERMINAL:
            return
        self.status = status
        self.updated_at = now

    def fail(self, error_type: str, description: str, now: datetime) -> None:
        """End ERROR with the reason AMS would give."""
        if self.status in TERMINAL:
            return
        self.error_type = error_type
        self.error_description = description
        self.move("ERROR", now)

    def _hits(self) -> list[dict[str, Any]]:
        return [s["Result"] for s in self.segments if s["Result"]["HitFlag"]]

    def suggestion(self) -> str:
        """The most severe suggestion of any slice (Pass when none hit)."""
        best = Suggestion.PASS.value
        for result in self.segments:
            suggestion = result["Result"]["Suggestion"]
            if _SEVERITY.get(suggestion, 0) > _SEVERITY[best]:
                best = suggestion
        return best if self.status == "FINISH" else ""

    def labels(self) -> list[dict[str, Any]]:
        """One entry per label hit, with its highest score."""
        labels: dict[str, dict[str, Any]] = {}
        for result in self._hits():
            entry = labels.get(result["Label"])
            if entry is None or result["Score"] > entry["Score"]:
                labels[result["Label"]] = {
                    "Label": result["Label"],
                    "Suggestion": result["Suggestion"],
                    "Score": result["Score"],
                    "SubLabel": result["SubLabel"],
                }
        return list(labels.values())

    def label(self) -> str:
        """The highest-priority label hit (most severe, then highest score), else Normal."""
        hits = self._hits()
        if not hits:
            return "Normal" if self.status == "FINISH" else ""
        top = max(hits, key=lambda r: (_SEVERITY.get(r["Suggestion"], 0), r["Score"]))
        return str(top["Label"])

    def media_info(self) -> dict[str, Any]:
        """``MediaInfo``: its Duration is the slice length in ms (the docs: "segment length
        for stream input, default 15 s"); each slice's own length is its Result.Duration."""
        return {
            "Codecs": "",
            "Duration": self.slice_seconds * 1000,
            "Width": 0,
            "Height": 0,
            "Thumbnail": "",
        }

    def detail(self, *, show_all_segments: bool) -> dict[str, Any]:
        """The DescribeTaskDetail answer (without RequestId), also the callback body."""
        segments = [s for s in self.segments if show_all_segments or s["Result"]["HitFlag"]]
        text = " ".join(s["Result"]["Text"] for s in self.segments if s["Result"]["Text"])
        return {
            "TaskId": self.task_id,
            "DataId": self.data_id,
            "BizType": self.biz_type,
            "Name": self.name,
            "Status": self.status,
            "Type": self.type,
            "Suggestion": self.suggestion(),
            "Labels": self.labels(),
            "InputInfo": {"Type": "URL", "Url": self.url, "BucketInfo": None},
            "AudioText": text[:1000],
            "AudioSegments": segments,
            "ErrorType": self.error_type,
            "ErrorDescription": self.error_description,
            "CreatedAt": iso(self.created_at),
            "UpdatedAt": iso(self.updated_at),
            "Label": self.label(),
            "MediaInfo": self.media_info(),
        }

    def summary(self) -> dict[str, Any]:
        """The DescribeTasks ``TaskData`` entry."""
        return {
            "DataId": self.data_id,
            "TaskId": self.task_id,
            "Status": self.status,
            "Name": self.name,
            "BizType": self.biz_type,
            "Type": self.type,
            "Suggestion": self.suggestion(),
            "Labels": self.labels(),
            "MediaInfo": self.media_info(),
            "InputInfo": {"Type": "URL", "Url": self.url, "BucketInfo": None},
            "CreatedAt": iso(self.created_at),
            "UpdatedAt": iso(self.updated_at),
        }
