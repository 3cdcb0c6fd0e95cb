"""Try it (``POST /v1/moderate/file`` and ``/url``), served for real on loopback: real WAV and
MP3 files decoded by PyAV, judged by the tone engine fake (a 1 kHz tone is an "Abuse" hit),
decided by the real policy; nothing stored; bad uploads, a busy engine and the viewer token
refused with clear errors; URLs refused exactly as ``POST /v1/streams`` refuses them. The tests
that check nothing is stored run on both backends (``ON_BOTH``)."""

from __future__ import annotations

import asyncio
import io
import tempfile
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from streamguard.api.console import ConsoleSetup
from streamguard.api.routes import build_api
from streamguard.api.try_it import TryIt
from streamguard.api.try_run import TryEngine, TryLimits
from streamguard.config import Config
from streamguard.config.ingest import EncodingConfig, IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.core.metrics import Metrics
from streamguard.core.segment import Segment
from streamguard.core.serving import start_site
from streamguard.core.verdict import Verdict
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.profiles import Profiles
from streamguard.state.results import ResultQuery, ResultStore
from streamguard.streams.registry import Streams
from streamguard.testing.alerts import RecordingSink, stream
from streamguard.testing.engines import ToneEngine
from tests.api.test_incidents_api import TOKEN, VIEWER, Rooms, conforms
from tests.support.backends import ON_BOTH, Backend, open_backend

PROFILES = {"default": ProfileConfig(), "strict": ProfileConfig(min_risk="low")}
RATE = 16_000
LIMIT = 2_000_000


def tone_wav(path: Path, *parts: tuple[float, float]) -> Path:
    """A 16 kHz mono WAV of tones: (frequency in Hz, seconds) each."""
    waves = [
        (8000 * np.sin(2 * np.pi * hz * np.arange(int(RATE * s)) / RATE)).astype("<i2")
        for hz, s in parts
    ]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.concatenate(waves).tobytes())
    return path


def work_dirs() -> set[Path]:
    """The temporary directories of tries (each removed when its try ends)."""
    return set(Path(tempfile.gettempdir()).glob("streamguard-try-*"))


class HeldEngine(ToneEngine):
    """The tone engine, holding each segment until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        self.entered.set()
        await self.release.wait()
        return await super().moderate(segment, biz_type=biz_type)


@dataclass
class Served:
    base: str
    http: aiohttp.ClientSession
    results: ResultStore
    engine: HeldEngine
    streams: Streams
    outcomes: Outcomes

    async def upload(
        self, data: bytes | None, token: str = TOKEN, name: str = "talk.wav", **fields: str
    ) -> tuple[int, Any]:
        form = aiohttp.FormData(default_to_multipart=True)
        if data is not None:
            form.add_field("file", io.BytesIO(data), filename=name, content_type="audio/wav")
        for key, value in fields.items():
            form.add_field(key, value)
        return await self.post("/v1/moderate/file", token, data=form)

    async def post(self, path: str, token: str = TOKEN, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        async with self.http.post(self.base + path, headers=headers, **kw) as response:
            body = await response.json()
            if response.status == 429:
                assert response.headers["Retry-After"].isdigit()
            return response.status, body


@pytest.fixture
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request, tmp_path) as opened:
        yield opened


@pytest.fixture
async def served(stores: Backend, tmp_path: Path) -> AsyncIterator[Served]:
    engine = HeldEngine()
    engine.release.set()
    ingest = IngestConfig(allow_local_files=False, open_timeout=5, read_timeout=5)
    profiles = Profiles(PROFILES)
    await stores.lease("s1")  # the room Rooms reports: a write would be accepted
    results, history = stores.results(), stores.incidents()
    alerting = Alerting(PROFILES, RecordingSink(), instance_id="t", db=stores.db, history=history)
    async with alerting:
        outcomes = Outcomes(PROFILES, alerting, results)
        streams = Streams(
            ingest=ingest,
            engine=engine,
            clip_dir=tmp_path / "clips",
            on_result=lambda *args: asyncio.sleep(0),
            on_state=lambda *args: asyncio.sleep(0),
            metrics=Metrics(),
            api_allows_files=False,
            profiles=profiles,
            on_attach=lambda stream: asyncio.sleep(0),
        )
        judge = TryEngine(engine, outcomes.decide, profiles.biz_type, EncodingConfig(), 15)
        try_it = TryIt(
            judge,
            profiles=profiles,
            check=streams.check,
            ingest=ingest,
            limits=TryLimits(max_upload_bytes=LIMIT, max_audio_seconds=40),
        )
        app = build_api(
            streams=Rooms(stream()),
            results=results,
            feedback=stores.feedback(),
            registry=CollectorRegistry(),
            readiness={},
            token=TOKEN,
            console=ConsoleSetup(history, tmp_path / "ev", viewer_token=VIEWER),
            try_it=try_it,
        )
        runner, port = await start_site(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                yield Served(base, http, results, engine, streams, outcomes)
        finally:
            await runner.cleanup()


@ON_BOTH
async def test_an_upload_is_judged_per_segment_and_nothing_is_stored(
    served: Served, tmp_path: Path
) -> None:
    wav = tone_wav(tmp_path / "talk.wav", (440, 15), (1000, 10))
    left_before = work_dirs()
    status, report = await served.upload(wav.read_bytes(), name="my talk.wav")
    assert status == 200, report
    conforms(report, "TryReport")
    assert (report["source"], report["profile"], report["segment_seconds"]) == (
        "my talk.wav",
        "default",
        15,
    )
    assert report["engine"] == "tone-fake 1"
    assert (report["seconds_heard"], report["truncated"], report["error"]) == (25.0, False, None)
    clean, abusive = report["segments"]
    assert (clean["start"], clean["end"], clean["outcome"]) == (0.0, 15.0, "moderated")
    assert (clean["suggestion"], clean["risk"], clean["would_alert"]) == ("Pass", "none", False)
    assert (abusive["start"], abusive["end"]) == (15.0, 25.0)
    assert (abusive["label"], abusive["suggestion"], abusive["risk"]) == ("Abuse", "Block", "high")
    assert abusive["would_alert"] is True
    assert abusive["keywords"][0]["keyword"] == "marker"
    assert abusive["text"][abusive["keywords"][0]["text_start"] :].startswith("marker")
    # A test: no result recorded (so no search hit, no usage), no incident, no alert.
    assert await served.results.query(ResultQuery()) == []
    assert await served.results.usage() == []
    # The upload and the clips of the flagged segment were removed with the try.
    assert work_dirs() == left_before

    # Options: another segment length (the tone is 10 s of 25, no longer dominant), another
    # profile.
    status, report = await served.upload(wav.read_bytes(), segment_seconds="30", profile="strict")
    assert status == 200, report
    (whole,) = report["segments"]
    assert (whole["end"], whole["label"], report["profile"]) == (25.0, "Normal", "strict")


async def test_audio_past_the_limit_is_not_read(served: Served, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "long.wav", (440, 60))
    status, report = await served.upload(wav.read_bytes())
    assert status == 200, report
    assert report["truncated"] is True
    assert 40 <= report["seconds_heard"] < 60
    assert [s["start"] for s in report["segments"]] == [0.0, 15.0, 30.0]


async def test_bad_uploads_get_clear_errors(served: Served, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "talk.wav", (440, 2)).read_bytes()

    async def refused(status: int, code: str, got: tuple[int, Any]) -> dict[str, Any]:
        assert (got[0], got[1]["error"]["code"]) == (status, code), got
        return dict(got[1]["error"])

    error = await refused(400, "bad_upload", await served.upload(None, profile="default"))
    assert "'file'" in error["message"]
    error = await refused(400, "empty_file", await served.upload(b"", name="nothing.wav"))
    assert "nothing.wav" in error["message"]
    error = await refused(413, "too_large", await served.upload(b"\0" * (LIMIT + 1)))
    assert str(LIMIT) in error["message"]
    text = b"just some words, not audio\n" * 50
    error = await refused(422, "not_audio", await served.upload(text, name="notes.txt"))
    assert "notes.txt" in error["message"]
    assert "streamguard-try" not in error["message"]  # the server's temporary path
    error = await refused(400, "invalid_request", await served.upload(wav, segment_seconds="20"))
    assert error["details"][0]["field"] == "segment_seconds"
    error = await refused(400, "invalid_request", await served.upload(wav, segment_seconds="²"))
    assert error["details"][0]["field"] == "segment_seconds"  # a digit to str, not to int
    await refused(422, "unknown_profile", await served.upload(wav, profile="lenient"))
    await refused(400, "bad_upload", await served.upload(wav, colour="blue"))
    await refused(415, "unsupported_media_type", await served.post("/v1/moderate/file", json={}))
    cut_short = b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nRIFF'
    for body in (b"garbage", cut_short):
        headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
        got = await served.post("/v1/moderate/file", data=body, headers=headers)
        await refused(400, "bad_upload", got)


async def test_one_try_at_a_time_and_never_with_the_viewer_token(
    served: Served, tmp_path: Path
) -> None:
    wav = tone_wav(tmp_path / "talk.wav", (440, 3)).read_bytes()
    status, body = await served.upload(wav, token=VIEWER)
    assert (status, body["error"]["code"]) == (403, "read_only")
    status, body = await served.post("/v1/moderate/url", VIEWER, json={"url": "http://x/a"})
    assert (status, body["error"]["code"]) == (403, "read_only")

    served.engine.release.clear()
    first = asyncio.create_task(served.upload(wav), name="test.first-try")
    await asyncio.wait_for(served.engine.entered.wait(), 60)
    status, body = await served.upload(wav)
    assert (status, body["error"]["code"]) == (429, "busy")
    status, body = await served.post("/v1/moderate/url", json={"url": "http://127.0.0.1/a"})
    assert (status, body["error"]["code"]) == (429, "busy")
    served.engine.release.set()
    status, report = await first
    assert status == 200
    assert len(report["segments"]) == 1
    assert (await served.upload(wav))[0] == 200  # the slot is free again


@ON_BOTH
async def test_a_url_is_checked_as_post_v1_streams_checks_it(
    served: Served, tmp_path: Path
) -> None:
    wav = tone_wav(tmp_path / "talk.wav", (1000, 16))
    app = web.Application()
    app.router.add_static("/media", tmp_path)
    runner, port = await start_site(app, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{port}/media/{wav.name}"
        status, report = await served.post("/v1/moderate/url", json={"url": url})
        assert status == 200, report
        conforms(report, "TryReport")
        assert report["source"] == url
        assert [s["label"] for s in report["segments"]] == ["Abuse", "Abuse"]
        missing = f"http://127.0.0.1:{port}/media/nope.wav"
        status, body = await served.post("/v1/moderate/url", json={"url": missing})
        assert (status, body["error"]["code"]) == (422, "not_audio")
    finally:
        await runner.cleanup()

    async def refused(body: Any) -> tuple[int, str]:
        status, answer = await served.post("/v1/moderate/url", json=body)
        return status, answer["error"]["code"]

    assert await refused({"url": "ftp://127.0.0.1/a.wav"}) == (422, "protocol_not_allowed")
    assert await refused({"url": str(wav)}) == (422, "protocol_not_allowed")  # a local file
    assert await refused({"url": "http:///nohost"}) == (422, "invalid_source")
    assert await refused({"url": "http://x/a", "profile": "nope"}) == (422, "unknown_profile")
    assert await refused({"url": "http://x/a", "live": True}) == (400, "invalid_request")
    assert await refused({}) == (400, "invalid_request")
    assert await refused(["http://x/a"]) == (400, "invalid_request")
    served.streams.drain()
    assert await refused({"url": "http://x/a"}) == (503, "shutting_down")
    assert await served.results.query(ResultQuery()) == []


async def test_not_with_the_ams_engine(served: Served, tmp_path: Path) -> None:
    """An AMS task outlives a try cut short, and its verdict would come back as a live room's:
    with the AMS engine, trying is refused (501) before anything is read."""
    wav = tone_wav(tmp_path / "a.wav", (440, 2)).read_bytes()
    for engine, expected in (("ams", 501), ("local", 200)):
        config = Config.model_validate({"engine": {"type": engine}})
        try_it = TryIt.of(
            config, served.engine, served.outcomes, Profiles(PROFILES), served.streams.check
        )
        app = web.Application()
        app.add_routes(try_it.routes())
        runner, port = await start_site(app, "127.0.0.1", 0)
        try:
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(wav), filename="a.wav")
            url = f"http://127.0.0.1:{port}/v1/moderate/file"
            async with served.http.post(url, data=form) as response:
                body = await response.json()
                assert response.status == expected, body
        finally:
            await runner.cleanup()
    assert body["segments"][0]["outcome"] == "moderated"
