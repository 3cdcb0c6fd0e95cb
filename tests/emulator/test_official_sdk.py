"""The official Tencent Cloud Python SDK talks to the emulator as it would to AMS: it signs,
sends, and parses all five actions and the error envelope without noticing a difference."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
from tencentcloud.ams.v20201229 import ams_client, models  # type: ignore[import-untyped]
from tencentcloud.common import credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]

from tests.support.ams import SECRET_ID, SECRET_KEY, ams_stack
from tests.support.audio import encode, noise, tone
from tests.support.waiting import eventually


def sdk_client(endpoint: str, secret_key: str = SECRET_KEY) -> Any:
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=10)
    )
    return ams_client.AmsClient(credential.Credential(SECRET_ID, secret_key), "", profile)


def call(client: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    response = getattr(client, action)(request)
    answer: dict[str, Any] = json.loads(response.to_json_string())
    return answer


async def test_official_sdk_runs_every_action(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    encode(np.concatenate([noise(15.0), tone(5.0)]), clips / "clip.wav")
    encode(tone(2.0), tmp_path / "short.wav")
    async with ams_stack(clips) as stack:
        endpoint = stack.emulator.url.removeprefix("http://")
        sdk = sdk_client(endpoint)
        clip_url = stack.clips.url_for(clips / "clip.wav")
        created = await asyncio.to_thread(
            call,
            sdk,
            "CreateAudioModerationTask",
            {"Tasks": [{"DataId": "sdk-1", "Input": {"Type": "URL", "Url": clip_url}}],
             "BizType": "sdk_test", "Type": "AUDIO"},
        )  # fmt: skip
        task_id = created["Results"][0]["TaskId"]
        await eventually(lambda: stack.emulator.tasks[task_id].status == "FINISH")
        detail = await asyncio.to_thread(
            call, sdk, "DescribeTaskDetail", {"TaskId": task_id, "ShowAllSegments": True}
        )
        listed = await asyncio.to_thread(call, sdk, "DescribeTasks", {"Limit": 10})
        content = base64.b64encode((tmp_path / "short.wav").read_bytes()).decode()
        synced = await asyncio.to_thread(
            call,
            sdk,
            "CreateAudioModerationSyncTask",
            {"BizType": "sdk_test", "DataId": "sdk-2", "FileFormat": "wav", "FileContent": content},
        )
        cancelled = await asyncio.to_thread(call, sdk, "CancelTask", {"TaskId": task_id})
    assert created["Results"][0]["Code"] == "OK"
    assert (detail["Status"], detail["Suggestion"], detail["Label"]) == ("FINISH", "Block", "Abuse")
    assert [s["OffsetTime"] for s in detail["AudioSegments"]] == ["0", "15"]
    assert detail["AudioSegments"][1]["Result"]["TextResults"][0]["Keywords"] == ["marker"]
    assert (listed["Total"], listed["Data"][0]["TaskId"]) == ("1", task_id)
    assert (synced["Suggestion"], synced["Duration"]) == ("Block", "2000")
    assert cancelled["RequestId"]


async def test_official_sdk_sees_error_envelopes(tmp_path: Path) -> None:
    async with ams_stack(tmp_path) as stack:
        endpoint = stack.emulator.url.removeprefix("http://")
        errors = []
        for client, params in (
            (sdk_client(endpoint), {"TaskId": "w-audio-unknown"}),
            (sdk_client(endpoint, secret_key="wrong"), {"TaskId": "w-audio-unknown"}),
        ):
            try:
                await asyncio.to_thread(call, client, "DescribeTaskDetail", params)
            except TencentCloudSDKException as exc:
                errors.append((exc.get_code(), exc.get_request_id()))
    assert [code for code, _ in errors] == ["ResourceNotFound", "AuthFailure.SignatureFailure"]
    assert all(request_id for _, request_id in errors)
