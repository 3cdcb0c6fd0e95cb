"""The AMS emulator over real HTTP: signatures, versions, parameter validation, task shapes,
pagination, callbacks with X-Signature, rate and concurrency limits, live tasks."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from streamguard.emulator import AmsEmulator, EmulatorOptions, Faults
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.errors import AmsError
from streamguard.tencentcloud.signing import Credentials, authorization_header, callback_signature
from streamguard.testing.engines import ToneEngine
from tests.support.ams import CREDENTIALS, KEYS, SECRET_ID, SECRET_KEY, ams_stack
from tests.support.audio import encode, noise, silence, tone
from tests.support.waiting import eventually


async def raw_call(
    url: str,
    action: str,
    params: Any,
    *,
    secret_id: str = SECRET_ID,
    secret_key: str = SECRET_KEY,
    timestamp: int | None = None,
    version: str = "2020-12-29",
    body: bytes | None = None,
    signed_headers: tuple[str, ...] = ("content-type", "host"),
    authorization: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Sign ``params`` as the SDKs do, optionally send other bytes (``body``); raw answer."""
    signed_body = json.dumps(params).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    host = url.removeprefix("http://")
    headers = {
        "Content-Type": "application/json",
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": version,
        "X-TC-Timestamp": str(stamp),
    }
    headers["Authorization"] = authorization or authorization_header(
        Credentials(secret_id, secret_key), "ams", stamp, headers, signed_body, signed_headers
    )
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(url + "/", data=io.BytesIO(body or signed_body), headers=headers) as response,
    ):
        return response.status, await response.json()


def error_code(answer: dict[str, Any]) -> str:
    assert answer["Response"]["RequestId"]
    return str(answer["Response"]["Error"]["Code"])


@asynccontextmanager
async def static_server(root: Path) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_static("/", root)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_correctly_signed_call_succeeds(tmp_path: Path) -> None:
    async with ams_stack(tmp_path) as stack:
        status, answer = await raw_call(stack.emulator.url, "DescribeTasks", {})
        # the current doc's variant signs x-tc-action too (vector B)
        _, signed_action = await raw_call(
            stack.emulator.url,
            "DescribeTasks",
            {"Limit": 1},
            signed_headers=("content-type", "host", "x-tc-action"),
        )
    assert status == 200
    assert answer["Response"]["Total"] == "0"
    assert answer["Response"]["Data"] == []
    assert "Error" not in signed_action["Response"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("tampered body", "AuthFailure.SignatureFailure"),
        ("wrong key", "AuthFailure.SignatureFailure"),
        ("stale timestamp", "AuthFailure.SignatureExpire"),
        ("future timestamp", "AuthFailure.SignatureExpire"),
        ("unknown SecretId", "AuthFailure.SecretIdNotFound"),
        ("wrong date in scope", "AuthFailure.SignatureFailure"),
        ("malformed authorization", "AuthFailure.InvalidAuthorization"),
    ],
)
async def test_bad_signatures_are_refused_with_the_right_code(
    tmp_path: Path, case: str, expected: str
) -> None:
    params = {"TaskId": "w-audio-whatever"}
    kwargs: dict[str, Any] = {}
    now = int(time.time())
    if case == "tampered body":
        kwargs["body"] = json.dumps({"TaskId": "w-audio-other"}).encode()
    elif case == "wrong key":
        kwargs["secret_key"] = "not-the-key"
    elif case == "stale timestamp":
        kwargs["timestamp"] = now - 301
    elif case == "future timestamp":
        kwargs["timestamp"] = now + 400
    elif case == "unknown SecretId":
        kwargs["secret_id"] = "AKIDnobody"
    elif case == "wrong date in scope":
        good = authorization_header(CREDENTIALS, "ams", now, {}, b"")
        kwargs["authorization"] = good.replace(
            time.strftime("%Y-%m-%d", time.gmtime(now)), "2019-02-25"
        )
    else:
        kwargs["authorization"] = "TC3-HMAC-SHA256 Credential=broken"
    async with ams_stack(tmp_path) as stack:
        status, answer = await raw_call(stack.emulator.url, "CancelTask", params, **kwargs)
    assert status == 200  # errors travel in the envelope
    assert error_code(answer) == expected
    assert answer["Response"]["Error"]["Message"]


async def test_version_action_and_method_are_checked(tmp_path: Path) -> None:
    async with ams_stack(tmp_path) as stack:
        url = stack.emulator.url
        _, version = await raw_call(url, "DescribeTasks", {}, version="2020-06-08")
        _, action = await raw_call(url, "DescribeAmsList", {})
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/", timeout=aiohttp.ClientTimeout(total=5)) as response,
        ):
            get = await response.json()
    assert error_code(version) == "NoSuchVersion"
    assert error_code(action) == "InvalidAction"
    assert error_code(get) == "UnsupportedProtocol"


@pytest.mark.parametrize(
    ("action", "params", "expected"),
    [
        ("DescribeTasks", {"Foo": 1}, "UnknownParameter"),
        ("DescribeTasks", {"Limit": "ten"}, "InvalidParameter"),
        ("DescribeTasks", {"Limit": 1000}, "InvalidParameterValue"),
        ("DescribeTasks", {"Filter": {"TaskStatus": "DONE"}}, "InvalidParameterValue"),
        ("CreateAudioModerationTask", {}, "MissingParameter"),
        ("CreateAudioModerationTask", {"Tasks": "x"}, "InvalidParameter"),
        (
            "CreateAudioModerationTask",
            {"Tasks": [{"Input": {"Url": "http://x/a.wav"}}] * 11},
            "InvalidParameterValue",
        ),
        ("CreateAudioModerationTask", {"Tasks": [{"DataId": "a"}]}, "MissingParameter"),
        (
            "CreateAudioModerationTask",
            {"Tasks": [{"DataId": "no spaces!", "Input": {"Url": "http://x/a.wav"}}]},
            "InvalidParameterValue.InvalidDataId",
        ),
        (
            "CreateAudioModerationTask",
            {"Tasks": [{"Input": {"Url": "http://x/a.wav"}}], "BizType": "ab"},
            "InvalidParameterValue",
        ),
        (
            "CreateAudioModerationTask",
            {"Tasks": [{"Input": {"Url": "http://x/a.wav", "Extra": 1}}]},
            "UnknownParameter",
        ),
        ("DescribeTaskDetail", {}, "MissingParameter"),
        (
            "DescribeTaskDetail",
            {"TaskId": "w-audio-x", "ShowAllSegments": "yes"},
            "InvalidParameter",
        ),
        ("DescribeTaskDetail", {"TaskId": "w-audio-unknown"}, "ResourceNotFound"),
        ("CancelTask", {"TaskId": "w-audio-unknown"}, "ResourceNotFound"),
        ("CreateAudioModerationSyncTask", {"BizType": "abc", "DataId": "x"}, "MissingParameter"),
        (
            "CreateAudioModerationSyncTask",
            {"BizType": "abc", "DataId": "x", "FileFormat": "wav", "FileContent": "@@"},
            "InvalidParameterValue.InvalidContent",
        ),
    ],
)
async def test_parameters_are_validated_with_the_spec_codes(
    tmp_path: Path, action: str, params: dict[str, Any], expected: str
) -> None:
    async with ams_stack(tmp_path) as stack:
        _, answer = await raw_call(stack.emulator.url, action, params)
    assert error_code(answer) == expected
    assert answer["Response"]["Error"]["Message"]


async def test_task_shapes_pagination_and_cancel(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(np.concatenate([noise(30.0), tone(2.0)]), media / "a.wav")
    async with static_server(media) as base, ams_stack(tmp_path / "clips") as stack:
        url = stack.emulator.url
        for batch in range(2):
            tasks = [
                {"DataId": f"seg-{batch}-{i}", "Input": {"Type": "URL", "Url": f"{base}/a.wav"}}
                for i in range(6)
            ]
            _, created = await raw_call(url, "CreateAudioModerationTask", {"Tasks": tasks})
            assert [r["Code"] for r in created["Response"]["Results"]] == ["OK"] * 6
        task_id = created["Response"]["Results"][0]["TaskId"]
        assert task_id.startswith("w-audio-")

        async def finished() -> bool:
            return all(t.status == "FINISH" for t in stack.emulator.tasks.values())

        await eventually(finished)
        _, detail = await raw_call(
            url, "DescribeTaskDetail", {"TaskId": task_id, "ShowAllSegments": True}
        )
        _, hits_only = await raw_call(url, "DescribeTaskDetail", {"TaskId": task_id})
        pages = []
        token = ""
        while True:
            params: dict[str, Any] = {"Limit": 5, **({"PageToken": token} if token else {})}
            _, page = await raw_call(url, "DescribeTasks", params)
            pages.append(page["Response"])
            token = page["Response"]["PageToken"]
            if not token:
                break
        _, cancelled = await raw_call(url, "CancelTask", {"TaskId": task_id})
    result = detail["Response"]
    assert (result["Status"], result["Suggestion"], result["Label"]) == ("FINISH", "Block", "Abuse")
    assert [s["OffsetTime"] for s in result["AudioSegments"]] == ["0", "15", "30"]
    assert [s["Result"]["Duration"] for s in result["AudioSegments"]] == ["15000", "15000", "2000"]
    assert [s["Result"]["HitFlag"] for s in result["AudioSegments"]] == [0, 0, 1]
    text_result = result["AudioSegments"][2]["Result"]["TextResults"][0]
    assert (text_result["Keywords"], text_result["LibId"]) == (["marker"], "lib-test-1")
    assert result["Labels"] == [
        {"Label": "Abuse", "Suggestion": "Block", "Score": 91, "SubLabel": "Insult"}
    ]
    assert result["CreatedAt"].endswith("Z")
    assert [s["OffsetTime"] for s in hits_only["Response"]["AudioSegments"]] == ["30"]
    assert [len(p["Data"]) for p in pages] == [5, 5, 2]
    assert {p["Total"] for p in pages} == {"12"}
    assert len({t["TaskId"] for p in pages for t in p["Data"]}) == 12
    assert "Error" not in cancelled["Response"]


async def test_download_failure_ends_the_task_url_error(tmp_path: Path) -> None:
    async with ams_stack(tmp_path) as stack:
        url = stack.emulator.url
        tasks = [{"DataId": "gone", "Input": {"Url": f"{url}/missing.wav"}}]
        _, created = await raw_call(url, "CreateAudioModerationTask", {"Tasks": tasks})
        task_id = created["Response"]["Results"][0]["TaskId"]
        await eventually(lambda: stack.emulator.tasks[task_id].status == "ERROR")
        _, detail = await raw_call(url, "DescribeTaskDetail", {"TaskId": task_id})
    assert detail["Response"]["ErrorType"] == "URL_ERROR"
    assert "404" in detail["Response"]["ErrorDescription"]


async def test_callbacks_carry_the_seed_signature(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(np.concatenate([tone(15.0), noise(15.0)]), media / "b.wav")
    received: list[tuple[bytes, str]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get("X-Signature", "")))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with static_server(media) as base, ams_stack(tmp_path / "c") as stack:
            params = {
                "Tasks": [{"DataId": "cb-1", "Input": {"Url": f"{base}/b.wav"}}],
                "CallbackUrl": hook,
                "Seed": "dedb6dcc1cb7c63fde8fa5abfd57",
            }
            await raw_call(stack.emulator.url, "CreateAudioModerationTask", params)
            await eventually(lambda: len(received) == 2)
    finally:
        await runner.cleanup()
    for body, signature in received:
        assert signature == callback_signature("dedb6dcc1cb7c63fde8fa5abfd57", body)
    segment_call, final_call = (json.loads(body) for body, _ in received)
    assert segment_call["Status"] == "RUNNING"
    assert [s["OffsetTime"] for s in segment_call["AudioSegments"]] == ["0"]
    assert (final_call["Status"], final_call["DataId"], final_call["Suggestion"]) == (
        "FINISH", "cb-1", "Block",
    )  # fmt: skip
    assert "Response" not in final_call


async def test_live_tasks_are_limited_and_report_unix_offsets(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(tone(16.0), media / "live.mp3")
    async with (
        static_server(media) as base,
        ams_stack(tmp_path / "c", options={"live_concurrency": 1}) as stack,
    ):
        url = stack.emulator.url
        tasks = [{"DataId": f"live-{i}", "Input": {"Url": f"{base}/live.mp3"}} for i in range(2)]
        before = time.time()
        _, created = await raw_call(
            url, "CreateAudioModerationTask", {"Tasks": tasks, "Type": "LIVE_AUDIO"}
        )
        results = created["Response"]["Results"]
        task_id = results[0]["TaskId"]
        await eventually(lambda: stack.emulator.tasks[task_id].status == "FINISH")
        _, detail = await raw_call(
            url, "DescribeTaskDetail", {"TaskId": task_id, "ShowAllSegments": True}
        )
    assert results[0]["Code"] == "OK"
    assert (results[1]["Code"], results[1]["Message"]) == (
        "RequestLimitExceeded", "You have reached the concurrency limit",
    )  # fmt: skip
    offsets = [int(s["OffsetTime"]) for s in detail["Response"]["AudioSegments"]]
    assert len(offsets) == 2
    assert all(offset >= int(before) - 16 for offset in offsets)  # Unix seconds, not offsets
    assert detail["Response"]["Type"] == "LIVE_AUDIO"


async def test_sync_task_judges_short_audio_and_refuses_long(tmp_path: Path) -> None:
    encode(tone(3.0), tmp_path / "short.wav")
    encode(silence(61.0), tmp_path / "long.wav")
    async with ams_stack(tmp_path / "c") as stack:
        url = stack.emulator.url
        answers = []
        for name in ("short.wav", "long.wav"):
            content = base64.b64encode((tmp_path / name).read_bytes()).decode()
            params = {"BizType": "abc", "DataId": "s1", "FileFormat": "wav", "FileContent": content}
            _, answer = await raw_call(url, "CreateAudioModerationSyncTask", params)
            answers.append(answer["Response"])
    short, long = answers
    assert (short["Suggestion"], short["Duration"], short["HitFlag"]) == ("Block", "3000", 1)
    assert short["AsrText"] == "you said marker word"
    assert long["Error"]["Code"] == "InvalidParameterValue"
    assert "60 s" in long["Error"]["Message"]


async def test_rate_limit_refuses_bursts_over_20_per_second() -> None:
    frozen = 1000.0  # no time passes: exactly the burst of 20 is allowed
    options = EmulatorOptions(keys=KEYS)
    async with (
        AmsEmulator(ToneEngine(), options, monotonic=lambda: frozen) as emulator,
        AmsClient(
            emulator.url, CREDENTIALS, requests_per_second=10_000, retry=RetryPolicy(attempts=1)
        ) as greedy,
    ):
        outcomes = await asyncio.gather(
            *(greedy.call("DescribeTasks", {}) for _ in range(30)), return_exceptions=True
        )
    refused = [o for o in outcomes if isinstance(o, AmsError)]
    assert len(refused) == 10
    assert {e.code for e in refused} == {"RequestLimitExceeded"}


async def test_injected_request_faults(tmp_path: Path) -> None:
    async with ams_stack(tmp_path, Faults(server_errors=1.0)) as stack:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                stack.emulator.url + "/",
                headers={"X-TC-Action": "DescribeTasks"},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as r,
        ):
            unauthenticated = await r.json()
        status, _ = await raw_call_text(stack.emulator.url)
    assert error_code(unauthenticated) == "AuthFailure.InvalidAuthorization"
    assert status == 503


async def raw_call_text(url: str) -> tuple[int, str]:
    body = b"{}"
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "Host": url.removeprefix("http://"),
        "X-TC-Action": "DescribeTasks",
        "X-TC-Version": "2020-12-29",
        "X-TC-Timestamp": str(stamp),
    }
    headers["Authorization"] = authorization_header(CREDENTIALS, "ams", stamp, headers, body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/", data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


def test_keys_fixture_matches() -> None:
    assert KEYS[SECRET_ID] == SECRET_KEY


async def test_the_final_callback_is_retried(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    encode(noise(2.0), media / "c.wav")
    attempts: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        await request.read()
        attempts.append(1)
        return web.Response(status=500 if len(attempts) < 3 else 200)

    app = web.Application()
    app.router.add_post("/hook", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with static_server(media) as base, ams_stack(tmp_path / "c") as stack:
            params = {
                "Tasks": [{"DataId": "cb-2", "Input": {"Url": f"{base}/c.wav"}}],
                "CallbackUrl": hook,
            }
            await raw_call(stack.emulator.url, "CreateAudioModerationTask", params)
            await eventually(lambda: stack.emulator.stats.callbacks == 1)
    finally:
        await runner.cleanup()
    assert len(attempts) == 3  # a Pass task: no slice callbacks, the final one retried
