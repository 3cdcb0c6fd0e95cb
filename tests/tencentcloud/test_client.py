"""AmsClient against the emulator: typed answers, error envelopes, bounded retries only for
retryable errors (never re-sending a Create whose outcome is unknown), rate limiting."""

from __future__ import annotations

import random
import time
from pathlib import Path

import aiohttp
import pytest

from streamguard.emulator.faults import Faults
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.errors import AmsError, AmsNetworkError, AmsRetryableError
from streamguard.tencentcloud.models import (
    CreateTasksRequest,
    DescribeTasksRequest,
    StorageInfo,
    TaskDetail,
    TaskInput,
)
from streamguard.tencentcloud.ratelimit import RateLimiter
from streamguard.testing.net import free_port
from tests.support.ams import CREDENTIALS, ams_stack, no_sleep

CREATE = CreateTasksRequest(
    tasks=[TaskInput(data_id="seg-1", input=StorageInfo(url="http://127.0.0.1:9/a.wav"))],
    biz_type="abc",
)


async def test_throttling_is_retried_with_growing_jittered_backoff(tmp_path: Path) -> None:
    async with ams_stack(tmp_path, Faults(throttle=1.0), attempts=4) as stack:
        with pytest.raises(AmsRetryableError) as caught:
            await stack.client.describe_tasks(DescribeTasksRequest())
        calls = stack.emulator.stats.calls["DescribeTasks"]
    assert caught.value.code == "RequestLimitExceeded"
    assert caught.value.request_id
    assert calls == 4
    delays = stack.sleeps.delays
    assert len(delays) == 3
    backoff = stack.client.retry.backoff
    for retry, delay in enumerate(delays, start=1):
        base = backoff.initial * backoff.multiplier ** (retry - 1)
        assert (
            base * (1 - backoff.jitter)
            <= delay
            <= min(backoff.maximum, base * (1 + backoff.jitter))
        )


async def test_a_throttled_create_is_retried_because_nothing_was_done(tmp_path: Path) -> None:
    async with ams_stack(tmp_path, Faults(throttle=1.0), attempts=3) as stack:
        with pytest.raises(AmsRetryableError):
            await stack.client.create_tasks(CREATE)
        assert stack.emulator.stats.calls["CreateAudioModerationTask"] == 3
        assert stack.emulator.tasks == {}


async def test_a_create_with_unknown_outcome_is_not_resent(tmp_path: Path) -> None:
    async with ams_stack(tmp_path, Faults(server_errors=1.0)) as stack:
        with pytest.raises(AmsNetworkError) as caught:
            await stack.client.create_tasks(CREATE)
        assert caught.value.sent
        assert stack.emulator.stats.calls["CreateAudioModerationTask"] == 1
        # an idempotent read is retried on the same fault
        with pytest.raises(AmsNetworkError):
            await stack.client.describe_tasks(DescribeTasksRequest())
        assert stack.emulator.stats.calls["DescribeTasks"] == 5


async def test_timeouts_are_network_errors_and_bounded(tmp_path: Path) -> None:
    async with ams_stack(tmp_path, Faults(hangs=1.0), request_timeout=0.2, attempts=2) as stack:
        with pytest.raises(AmsNetworkError) as caught:
            await stack.client.describe_tasks(DescribeTasksRequest())
        assert stack.emulator.stats.handled["DescribeTasks"] == 2
    assert caught.value.code == "ServerNetworkError"
    assert "Timeout" in caught.value.message


async def test_connection_refused_is_retried_even_for_create() -> None:
    sleeps = no_sleep()
    async with AmsClient(
        f"http://127.0.0.1:{free_port()}",
        CREDENTIALS,
        retry=RetryPolicy(attempts=3),
        sleep=sleeps,
        timeout=aiohttp.ClientTimeout(total=2),
    ) as client:
        with pytest.raises(AmsNetworkError) as caught:
            await client.create_tasks(CREATE)
    assert not caught.value.sent
    assert caught.value.code == "ClientNetworkError"
    assert client.calls["CreateAudioModerationTask"] == 3


async def test_retries_follow_the_backoff_and_stop_before_the_time_budget() -> None:
    now = [0.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    policy = RetryPolicy(attempts=10, total_seconds=2.0, initial=0.25, maximum=5.0, jitter=0.5)
    async with AmsClient(
        f"http://127.0.0.1:{free_port()}",
        CREDENTIALS,
        retry=policy,
        sleep=sleep,
        monotonic=lambda: now[0],
        rng=random.Random(3),
        timeout=aiohttp.ClientTimeout(total=2),
    ) as client:
        with pytest.raises(AmsNetworkError):
            await client.describe_tasks(DescribeTasksRequest())
    replay = random.Random(3)
    expected: list[float] = []
    while True:  # the same schedule, cut where a retry would start at 2 s or later
        delay = policy.backoff.delay(len(expected) + 1, replay)
        if sum(expected) + delay >= policy.total_seconds:
            break
        expected.append(delay)
    assert sleeps == expected
    assert client.calls["DescribeTasks"] == len(expected) + 1 < policy.attempts


def test_a_retry_policy_is_a_valid_backoff() -> None:
    backoff = RetryPolicy(attempts=3, total_seconds=9.0).backoff
    assert (backoff.attempts, backoff.total_seconds, backoff.maximum) == (3, 9.0, 5.0)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(initial=2.0, maximum=1.0)


async def test_signature_expire_is_retried_after_resigning(tmp_path: Path) -> None:
    stamps = [time.time() - 3600]  # the first attempt is signed with a stale clock

    def clock() -> float:
        return stamps.pop() if stamps else time.time()

    async with (
        ams_stack(tmp_path) as stack,
        AmsClient(stack.emulator.url, CREDENTIALS, clock=clock, sleep=no_sleep()) as client,
    ):
        page = await client.describe_tasks(DescribeTasksRequest(limit=5))
    assert page.total == 0
    assert client.calls["DescribeTasks"] == 2


async def test_non_retryable_errors_raise_at_once_with_code_message_and_request_id(
    tmp_path: Path,
) -> None:
    async with ams_stack(tmp_path) as stack:
        with pytest.raises(AmsError) as caught:
            await stack.client.describe_task_detail("w-audio-unknown")
        calls = stack.emulator.stats.calls["DescribeTaskDetail"]
    assert not isinstance(caught.value, AmsRetryableError)
    assert caught.value.code == "ResourceNotFound"
    assert "w-audio-unknown" in caught.value.message
    assert caught.value.request_id
    assert calls == 1


async def test_per_task_codes_are_reported(tmp_path: Path) -> None:
    request = CreateTasksRequest(
        tasks=[
            TaskInput(data_id=f"live-{i}", input=StorageInfo(url="http://127.0.0.1:9/x.flv"))
            for i in range(2)
        ],
        type="LIVE_AUDIO",
    )
    async with ams_stack(tmp_path, options={"live_concurrency": 1}) as stack:
        answer = await stack.client.create_tasks(request)
    assert [r.code for r in answer.results] == ["OK", "RequestLimitExceeded"]
    assert answer.results[0].task_id


def test_models_tolerate_strings_nulls_and_unknown_fields() -> None:
    detail = TaskDetail.model_validate(
        {
            "TaskId": "w-audio-1",
            "Labels": None,
            "NewField": {"x": 1},
            "MediaInfo": {"Duration": "177", "Codecs": None},
            "AudioSegments": [
                {"OffsetTime": 30, "Result": {"Duration": "29000", "Score": "88", "Foo": 1}},
                {"OffsetTime": "1594650717", "Result": {"TextResults": None}},
            ],
        }
    )
    assert detail.labels == []
    assert detail.media_info is not None
    assert detail.media_info.duration == 177
    first, second = detail.audio_segments
    assert first.result is not None
    assert second.result is not None
    assert (first.offset_time, first.result.duration, first.result.score) == ("30", 29000, 88)
    assert second.offset_seconds == 1594650717.0
    assert second.result.text_results == []


async def test_rate_limiter_spaces_calls() -> None:
    now = [0.0]
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(20.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(60):
        await limiter.acquire()
    # 20 from the initial burst, then one every 1/20 s: 40 more take 2 s of (fake) time
    assert now[0] == pytest.approx(2.0)
    assert not limiter.try_acquire()


def test_endpoint_must_be_http() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        AmsClient("ams.tencentcloudapi.com", CREDENTIALS)
