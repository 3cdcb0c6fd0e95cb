"""The emulator behaves like the service where the client's logic depends on it (issue 12):
oldest tasks first under backlog, a request-rate bucket per action, a PageToken that neither
skips nor repeats tasks created between pages, and MediaInfo.Duration as the slice length."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.emulator import AmsEmulator, EmulatorOptions
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.errors import AmsError
from streamguard.testing.engines import ToneEngine
from tests.emulator.test_emulator import raw_call, static_server
from tests.support.ams import CREDENTIALS, KEYS, ams_stack
from tests.support.audio import encode, noise, tone
from tests.support.waiting import eventually


async def create(url: str, base: str, data_id: str) -> str:
    task = {"DataId": data_id, "Input": {"Type": "URL", "Url": f"{base}/a.wav"}}
    _, answer = await raw_call(url, "CreateAudioModerationTask", {"Tasks": [task]})
    return str(answer["Response"]["Results"][0]["TaskId"])


async def test_under_backlog_the_oldest_task_runs_first(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(noise(15.0), media / "a.wav")
    options = {"ondemand_concurrency": 1, "processing_factor": 0.05}
    async with static_server(media) as base, ams_stack(tmp_path / "c", options=options) as stack:
        url = stack.emulator.url
        first = await create(url, base, "first")
        await eventually(lambda: stack.emulator.tasks[first].status == "RUNNING")
        # the one worker is busy: these two wait, in the order they were created
        queued = [await create(url, base, name) for name in ("second", "third", "fourth")]
        await eventually(lambda: all(t.status == "FINISH" for t in stack.emulator.tasks.values()))
        judged = list(stack.judge.judged)
    order = [next(t for t in [first, *queued] if s.startswith(t[:40])) for s in judged]
    assert order == [first, *queued]


async def test_each_action_has_its_own_rate_bucket() -> None:
    frozen = 1000.0  # no time passes: each bucket allows exactly its burst
    options = EmulatorOptions(keys=KEYS, action_rates={"DescribeTasks": 3})
    async with (
        AmsEmulator(ToneEngine(), options, monotonic=lambda: frozen) as emulator,
        AmsClient(
            emulator.url, CREDENTIALS, requests_per_second=10_000, retry=RetryPolicy(attempts=1)
        ) as greedy,
    ):
        pages = await asyncio.gather(
            *(greedy.call("DescribeTasks", {}) for _ in range(5)), return_exceptions=True
        )
        # DescribeTasks is exhausted; DescribeTaskDetail's bucket (20, the default) is not
        details = await asyncio.gather(
            *(greedy.call("DescribeTaskDetail", {"TaskId": "w-audio-x"}) for _ in range(22)),
            return_exceptions=True,
        )
    assert [isinstance(p, AmsError) for p in pages].count(True) == 2
    codes = [d.code if isinstance(d, AmsError) else "OK" for d in details]
    assert codes.count("ResourceNotFound") == 20  # served (the task is unknown)
    assert codes.count("RequestLimitExceeded") == 2


async def test_page_tokens_neither_skip_nor_repeat_tasks_created_between_pages(
    tmp_path: Path,
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(noise(1.0), media / "a.wav")
    async with static_server(media) as base, ams_stack(tmp_path / "c") as stack:
        url = stack.emulator.url
        before = [await create(url, base, f"old-{i}") for i in range(5)]
        seen: list[str] = []
        params: dict[str, Any] = {"Limit": 2}
        while True:
            _, page = await raw_call(url, "DescribeTasks", params)
            seen += [t["TaskId"] for t in page["Response"]["Data"]]
            # new tasks arrive between pages
            await create(url, base, f"new-{len(seen)}")
            token = page["Response"]["PageToken"]
            if not token:
                break
            params = {"Limit": 2, "PageToken": token}
        _, forged = await raw_call(url, "DescribeTasks", {"PageToken": "b2Zmc2V0OjI="})
    assert seen == before[::-1]  # newest first, every old task once, none skipped
    assert forged["Response"]["Error"]["Code"] == "InvalidParameterValue"


async def test_media_info_duration_is_the_slice_length(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(np.concatenate([noise(16.0), tone(2.0)]), media / "a.wav")
    async with static_server(media) as base, ams_stack(tmp_path / "c") as stack:
        url = stack.emulator.url
        task_id = await create(url, base, "one")
        await eventually(lambda: stack.emulator.tasks[task_id].status == "FINISH")
        _, detail = await raw_call(
            url, "DescribeTaskDetail", {"TaskId": task_id, "ShowAllSegments": True}
        )
        _, page = await raw_call(url, "DescribeTasks", {})
    answer = detail["Response"]
    assert answer["MediaInfo"]["Duration"] == 15_000  # the console's slice length, in ms
    assert page["Response"]["Data"][0]["MediaInfo"]["Duration"] == 15_000
    # each slice's own length is in its Result
    assert [s["Result"]["Duration"] for s in answer["AudioSegments"]] == ["15000", "3000"]
