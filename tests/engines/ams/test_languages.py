"""Item 7 of issue 12: AMS judges Chinese; speech it heard in another language is reported
as ``unsupported`` and never passed, and the result families we do not fold into the verdict
stay in its details."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streamguard.core.verdict import Outcome, Suggestion
from streamguard.engines.ams import verdicts
from streamguard.engines.ams.languages import supported
from streamguard.state.db import Database
from streamguard.tencentcloud.models import SyncTaskResponse, TaskDetail
from tests.engines.ams.test_ams_engine import live_segments, moderate_all
from tests.support.ams import ams_stack, engine_for


def detail(suggestion: str, *languages: str, **result: Any) -> TaskDetail:
    return TaskDetail.model_validate(
        {
            "TaskId": "t",
            "Status": "FINISH",
            "Suggestion": suggestion,
            "AudioSegments": [
                {
                    "OffsetTime": "0",
                    "Result": {
                        "Suggestion": suggestion,
                        "LanguageResults": [
                            {"Label": lang, "Score": 88, "StartTime": 0.5, "EndTime": 14}
                            for lang in languages
                        ],
                        **result,
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize("label", ["cmn", "Mandarin", "zh-CN", "ZH", "", "Chinese"])
def test_chinese_is_judged(label: str) -> None:
    assert supported(label)
    verdict = verdicts.from_detail("s", detail("Pass", label))
    assert verdict.suggestion is Suggestion.PASS
    assert verdict.unsupported == ()
    assert verdict.reason == ""


@pytest.mark.parametrize("label", ["English", "en", "Arabic", "Other", "Uyghur"])
def test_a_pass_over_another_language_is_unsupported_and_reviewed(label: str) -> None:
    verdict = verdicts.from_detail("s", detail("Pass", "cmn", label))
    assert verdict.outcome is Outcome.MODERATED
    assert verdict.suggestion is Suggestion.REVIEW
    assert verdict.unsupported == (f"speech not in Chinese ({label})",)
    assert label in verdict.reason
    assert "not a judgement" in verdict.reason
    assert verdict.details["languages"] == ["cmn", label]
    # nothing was hit: the policy sees no label to raise an alert on
    assert (verdict.label, verdict.hit) == ("Normal", False)


def test_a_block_over_another_language_stays_block_and_says_so() -> None:
    verdict = verdicts.from_detail("s", detail("Block", "English", Label="Abuse", HitFlag=1))
    assert verdict.suggestion is Suggestion.BLOCK
    assert verdict.unsupported == ("speech not in Chinese (English)",)


def test_the_languages_judged_are_configurable() -> None:
    verdict = verdicts.from_detail("s", detail("Pass", "English"), languages=["cmn", "english"])
    assert verdict.suggestion is Suggestion.PASS
    assert verdict.unsupported == ()


def test_sync_answers_are_checked_the_same_way() -> None:
    answer = SyncTaskResponse.model_validate(
        {"Suggestion": "Pass", "LanguageResults": [{"Label": "English"}]}
    )
    verdict = verdicts.from_sync("s", answer)
    assert verdict.suggestion is Suggestion.REVIEW
    assert verdict.unsupported == ("speech not in Chinese (English)",)


def test_other_result_families_are_kept_in_the_details() -> None:
    verdict = verdicts.from_detail(
        "s",
        detail(
            "Pass",
            "cmn",
            Url="https://cos.example/seg.mp3",
            SpeakerResults=[{"Label": "spk-1", "Score": 70, "StartTime": 1, "EndTime": "9.5"}],
            RecognitionResults=[{"Label": "Gender", "Tags": [{"Name": "Male", "Score": 80}]}],
            LabelResults=[{"Scene": "Song", "Name": "a song", "Suggestion": 0}],
            TextResults=[
                {
                    "LibId": "lib",
                    "Keywords": ["k"],
                    "Suggestion": "Pass",
                    "HitInfos": [{"Keyword": "k", "Positions": [{"Start": 3, "End": 4}]}],
                }
            ],
        ),
    )
    piece = verdict.details["slices"][0]
    assert piece["url"] == "https://cos.example/seg.mp3"
    assert piece["speakers"][0]["end_time"] == 9.5
    assert piece["recognition"][0]["tags"][0]["name"] == "Male"
    assert piece["songs"][0]["name"] == "a song"
    assert piece["hits"][0]["infos"][0]["positions"] == [{"start": 3, "end": 4}]
    assert piece["languages"][0]["label"] == "cmn"


def test_a_nested_block_is_not_passed() -> None:
    # the slice and the task say Pass, the text result inside the slice says Block
    answer = detail("Pass", "cmn", TextResults=[{"Label": "Abuse", "Suggestion": "Block"}])
    assert verdicts.from_detail("s", answer).suggestion is Suggestion.BLOCK


@pytest.mark.parametrize("callbacks", [True, False], ids=["full-callbacks", "polling"])
async def test_end_to_end_english_speech_is_never_passed(tmp_path: Path, callbacks: bool) -> None:
    # The emulator reports English for every slice with speech. Pass tasks carry their
    # slices (and so their languages) in full callbacks, or in details fetched by polling.
    options = {"language": "English", "full_callbacks": True}
    segments = live_segments("room-lang", ["tone", "noise"])
    async with (
        ams_stack(tmp_path / "clips", options=options) as stack,
        Database(tmp_path / "state.db") as db,
        engine_for(
            stack, db, callbacks=callbacks, callback_grace=60.0, fetch_pass_details=not callbacks
        ) as engine,
        asyncio.timeout(30),
    ):
        block, speech = await moderate_all(engine, segments)
    assert block.suggestion is Suggestion.BLOCK
    assert block.unsupported == ("speech not in Chinese (English)",)
    assert speech.outcome is Outcome.MODERATED
    assert speech.suggestion is Suggestion.REVIEW
    assert speech.unsupported == ("speech not in Chinese (English)",)
