"""The client reads what AMS may send: lenient models, error families, size caps, budgets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from streamguard.core.verdict import Suggestion
from streamguard.emulator.faults import Faults
from streamguard.engines.ams import verdicts
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.errors import (
    AmsError,
    AmsInvalidResponse,
    AmsNetworkError,
    AmsRetryableError,
    error_for,
)
from streamguard.tencentcloud.models import (
    CreateTasksRequest,
    CreateTasksResponse,
    DescribeTasksRequest,
    DescribeTasksResponse,
    StorageInfo,
    TaskData,
    TaskDetail,
    TaskFilter,
    TaskInput,
    parse,
)
from tests.support.ams import CREDENTIALS, ams_stack


def test_odd_shapes_parse_leniently() -> None:
    detail = TaskDetail.model_validate(
        {
            "TaskId": "w-audio-1",
            "Status": "FINISH",
            "Labels": "notalist",
            "MediaInfo": "n/a",
            "InputInfo": [],
            "AudioSegments": [
                {"OffsetTime": 0, "Result": None},
                {"OffsetTime": "15", "Result": {"Score": 97.5, "HitFlag": "1", "Suggestion": 3}},
                "not a segment",
            ],
        }
    )
    assert detail.labels == []
    assert (detail.media_info, detail.input_info) == (None, None)
    first, second = detail.audio_segments
    assert first.result is None
    assert second.result is not None
    assert (second.result.score, second.result.hit_flag, second.result.suggestion) == (98, 1, "3")
    page = DescribeTasksResponse.model_validate({"Total": "many", "Data": {"TaskId": "t"}})
    assert (page.total, [t.task_id for t in page.data]) == (0, ["t"])
    assert CreateTasksResponse.model_validate({"Results": "notalist"}).results == []


def test_what_still_cannot_be_read_is_invalid_response_with_its_request_id() -> None:
    with pytest.raises(AmsInvalidResponse) as caught:
        parse(TaskFilter, {"RequestId": "req-1", "Unexpected": 1})
    assert caught.value.code == "InvalidResponse"
    assert caught.value.request_id == "req-1"
    assert isinstance(caught.value, AmsError)


@pytest.mark.parametrize(
    ("code", "retry", "unprocessed"),
    [
        ("RequestLimitExceeded", True, True),
        ("RequestLimitExceeded.PerSecondLimit", True, True),
        ("InternalError.DbError", True, False),
        ("InternalError", True, False),
        ("ResourceUnavailable.ServiceBusy", True, False),
        ("AuthFailure.SignatureExpire", True, True),
        ("InvalidParameter", False, False),
        ("ResourceNotFound", False, False),
        ("RequestLimitExceededButNotReally", False, False),
    ],
)
def test_codes_are_retried_by_family(code: str, retry: bool, unprocessed: bool) -> None:
    error = error_for(code, "m", "r")
    assert isinstance(error, AmsRetryableError) is retry
    if isinstance(error, AmsRetryableError):
        assert error.unprocessed is unprocessed


def test_the_label_comes_from_the_most_severe_labels_entry() -> None:
    detail = TaskDetail.model_validate(
        {
            "TaskId": "t",
            "Status": "FINISH",
            "Suggestion": "Review",
            "Labels": [
                {"Label": "Ad", "Suggestion": "Pass", "Score": 99},
                {"Label": "Porn", "Suggestion": "Review", "Score": 80, "SubLabel": "Sexy"},
                {"Label": "Moan", "Suggestion": "Review", "Score": 60},
            ],
        }
    )
    verdict = verdicts.from_detail("s", detail)
    assert (verdict.suggestion, verdict.label, verdict.sub_label, verdict.score) == (
        Suggestion.REVIEW, "Porn", "Sexy", 80,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Pass", Suggestion.PASS),
        ("Block", Suggestion.BLOCK),
        ("Review", Suggestion.REVIEW),
        ("Reveiw", Suggestion.REVIEW),
        ("Delete", Suggestion.REVIEW),
        ("", Suggestion.REVIEW),
    ],
)
def test_suggestions_fail_closed(said: str, expected: Suggestion) -> None:
    assert verdicts.suggestion(said) is expected
    detail = TaskDetail.model_validate({"TaskId": "t", "Status": "FINISH", "Suggestion": said})
    assert verdicts.from_detail("s", detail).suggestion is expected


@pytest.mark.parametrize(
    ("summary", "passes"),
    [
        ({"Status": "FINISH", "Suggestion": "Pass"}, True),
        ({"Status": "FINISH", "Suggestion": ""}, False),
        ({"Status": "FINISH", "Suggestion": None, "Labels": None}, False),
        ({"Status": "FINISH", "Suggestion": "Delete"}, False),
        ({"Status": "FINISH", "Suggestion": "Pass", "Labels": [{"Suggestion": "Block"}]}, False),
        ({"Status": "ERROR", "Suggestion": "Pass"}, False),
    ],
)
def test_only_a_summary_saying_exactly_pass_settles_a_task(
    summary: dict[str, object], passes: bool
) -> None:
    assert verdicts.summary_passes(TaskData.model_validate(summary)) is passes


async def test_answers_over_the_size_cap_are_refused_large_ones_parsed_off_the_loop(
    tmp_path: Path,
) -> None:
    async with ams_stack(tmp_path, Faults(padding_bytes=400_000)) as stack:
        request = CreateTasksRequest(
            tasks=[TaskInput(data_id="d-1", input=StorageInfo(url="http://127.0.0.1:9/a.wav"))]
        )
        created = await stack.client.create_tasks(request)
        task_id = created.results[0].task_id
        detail = await stack.client.describe_task_detail(task_id)
        assert detail.task_id == task_id
        assert stack.client.offloaded == 1  # 400 kB was decoded on a worker thread
        async with AmsClient(
            stack.emulator.url, CREDENTIALS, max_body_bytes=100_000, sleep=stack.sleeps
        ) as small:
            with pytest.raises(AmsInvalidResponse, match="cap"):
                await small.describe_task_detail(task_id)
            await small.describe_tasks(DescribeTasksRequest())  # small answers still pass


async def _refused(client: AmsClient) -> None:
    with pytest.raises(AmsNetworkError):
        await client.describe_tasks(DescribeTasksRequest())


async def test_an_attempt_does_not_outlive_the_retry_budget(tmp_path: Path) -> None:
    async with (
        ams_stack(tmp_path, Faults(hangs=1.0, hang_seconds=600.0)) as stack,
        AmsClient(
            stack.emulator.url,
            CREDENTIALS,
            timeout=aiohttp.ClientTimeout(total=600.0),
            retry=RetryPolicy(attempts=5, total_seconds=1.0),
            sleep=stack.sleeps,
        ) as client,
    ):
        # Emulator hangs outlast the 600 s client timeout: only an attempt cut to the 1 s
        # retry budget ends inside the bound (a hang guard, not a speed check).
        async with asyncio.timeout(120):
            await _refused(client)
