"""The console in a real browser: Debian's chromium, headless, driven by Playwright, against
the whole daemon in a subprocess moderating a live room with the local engine.

Sign in, see the room, open the incident it raised, the evidence clip loads in the page's
``<audio>`` element (through its signed URL, without the token), mark a false positive, and
the API lists that feedback. Then search a word of the incident's transcript, play the hit's
clip and open it in its incident; try a WAV spoken by espeak-ng and see its verdict (and
nothing stored); see the usage chart and download its CSV. Every request the pages make
stays on the daemon's address.

A room with video whose frames IMS (the emulator) flags: the incident page shows the
frame's JPEG as a picture (decoded: ``naturalWidth > 0``) with the time it was taken.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from streamguard.demo.samples import speak, write_audio
from streamguard.emulator import AmsEmulator, EmulatorOptions
from streamguard.state.usage import USAGE_COLUMNS
from streamguard.testing.engines import ToneEngine
from streamguard.testing.media_servers import IcecastServer
from streamguard.testing.video import SceneShow
from tests.support.ams import KEYS, SECRET_ID, SECRET_KEY
from tests.support.daemon import TOKEN, DaemonProcess

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

INGEST = """
[ingest]
segment_seconds = 15
open_timeout = 2
read_timeout = 2
stall_timeout = 3
[ingest.backoff]
initial = 0.2
maximum = 1.0
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is not installed (scripts/test installs it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False
        )
        try:
            yield launched
        finally:
            await launched.close()


async def wait_for_incident(daemon: DaemonProcess, seconds: float) -> dict[str, Any]:
    """The first incident whose opening segment kept an evidence clip."""
    async with asyncio.timeout(seconds):
        while True:
            _, body = await asyncio.to_thread(daemon.request, "GET", "/v1/incidents")
            for incident in body["incidents"]:
                path = f"/v1/incidents/{incident['id']}"
                _, detail = await asyncio.to_thread(daemon.request, "GET", path)
                if any(s["evidence"] for s in detail["segments"]):
                    return dict(incident)
            await asyncio.sleep(0.5)


async def test_moderator_signs_in_hears_the_clip_and_marks_a_false_positive(
    tmp_path: Path, room_media: tuple[bytes, float], browser: Browser
) -> None:
    media, seconds = room_media
    daemon = DaemonProcess(tmp_path, INGEST)
    try:
        await asyncio.to_thread(daemon.start)
        async with IcecastServer(media, seconds / 2) as server:
            body = {"id": "room-a", "url": server.url, "room": "lobby"}
            status, reply = await asyncio.to_thread(daemon.request, "POST", "/v1/streams", body)
            assert status == 201, reply
            incident = await wait_for_incident(daemon, 120)
            base = f"http://127.0.0.1:{daemon.port}"
            await drive_the_console(browser, base, incident)
            await search_try_and_usage(browser, base, daemon, incident, tmp_path)
        _, feedback = await asyncio.to_thread(daemon.request, "GET", "/v1/feedback")
        (entry,) = feedback["entries"]
        assert (entry["kind"], entry["target_type"]) == ("false_positive", "incident_id")
        assert (entry["target_id"], entry["label"]) == (incident["id"], incident["label"])
        assert feedback["counts"]["false_positive"] == {incident["label"]: 1}
        daemon.signal(signal.SIGTERM)
        assert await asyncio.to_thread(daemon.wait) == 0
    finally:
        daemon.close()


async def drive_the_console(browser: Browser, base: str, incident: dict[str, Any]) -> None:
    page = await browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # Not signed in: the console sends the tab to its login form first.
    await page.goto(f"{base}/console/")
    await page.wait_for_url("**/console/login?next=*")
    await page.fill("#token", "not-the-token")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#login-error:has-text('not accepted')")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/")
    assert await page.evaluate("sessionStorage.getItem('streamguard.token')") == TOKEN
    assert await page.evaluate("localStorage.length") == 0

    row = page.locator("tr[data-stream='room-a']")
    await row.wait_for()
    assert "lobby" in await row.inner_text()
    assert await page.text_content("#whoami") == "signed in: operator"

    await page.click("nav >> text=Incidents")
    link = page.locator(f"tr[data-incident='{incident['id']}'] a")
    await link.click()
    await page.wait_for_url(f"**/console/incidents/{incident['id']}")
    await page.locator("#timeline li").first.wait_for()
    assert await page.locator("#timeline mark").count() >= 1  # the keyword hits
    audio = page.locator("#timeline audio").first
    assert "/v1/evidence/" in (await audio.get_attribute("src") or "")
    await page.wait_for_function(
        "() => { const a = document.querySelector('#timeline audio');"
        " return a !== null && a.readyState >= 1 && a.duration > 0 }",
        timeout=20_000,
    )
    duration = await audio.evaluate("a => a.duration")
    assert 0 < duration <= 16

    await page.click("button[data-kind='false_positive']")
    await page.wait_for_selector("#feedback-status:has-text('Stored: false positive')")
    await page.wait_for_selector("#feedback-list li:has-text('false positive')")
    assert all(url.startswith(base + "/") for url in requested), requested
    await page.close()


async def sign_in(page: Page, base: str, path: str) -> None:
    await page.goto(f"{base}{path}")
    await page.wait_for_url("**/console/login?next=*")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}{path}")


async def search_try_and_usage(
    browser: Browser, base: str, daemon: DaemonProcess, incident: dict[str, Any], tmp: Path
) -> None:
    page = await browser.new_page(accept_downloads=True)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await sign_in(page, base, "/console/search")
    await search_a_word(page, daemon, incident)
    await try_a_file(page, daemon, tmp)
    await usage_and_its_csv(page, daemon, incident)
    assert all(url.startswith((base + "/", "blob:" + base + "/")) for url in requested), requested
    await page.close()


async def search_a_word(page: Page, daemon: DaemonProcess, incident: dict[str, Any]) -> None:
    path = f"/v1/incidents/{incident['id']}"
    _, detail = await asyncio.to_thread(daemon.request, "GET", path)
    opening = next(s for s in detail["segments"] if s["verdict"]["keywords"])
    keyword = opening["verdict"]["keywords"][0]["keyword"]
    word = keyword.split()[0].upper()  # the search ignores case

    await page.fill("#search-form input[name=q]", word)
    await page.fill("#search-form input[name=room]", incident["room_id"])
    await page.click("#search-form button[type=submit]")
    hit = page.locator(f"#hits li[data-segment='{opening['segment']['id']}']")
    await hit.wait_for()
    marked = await hit.locator("mark.match").all_inner_texts()
    assert word.lower() in [m.lower() for m in marked], marked
    await hit.locator("button.play").click()
    await page.wait_for_function(
        "() => { const a = document.querySelector('#hits audio');"
        " return a !== null && a.readyState >= 1 && a.duration > 0 }",
        timeout=20_000,
    )
    await hit.locator("a.open-incident").click()
    await page.wait_for_url(f"**/console/incidents/{incident['id']}#segment-*")
    target = page.locator("#timeline li.target")
    await target.wait_for()
    assert await target.get_attribute("data-segment") == opening["segment"]["id"]


async def try_a_file(page: Page, daemon: DaemonProcess, tmp: Path) -> None:
    wav = tmp / "try-me.wav"
    said = await asyncio.to_thread(speak, "Shut up, you idiot. I will kill you.", "espeak:en-gb+m3")
    await asyncio.to_thread(write_audio, wav, said)
    await page.click("nav >> text=Try it")
    await page.wait_for_url("**/console/try")
    await page.set_input_files("#try-file", str(wav))
    await page.click("#try-file-form button[type=submit]")
    await page.wait_for_selector("#try-status:has-text('Nothing was stored')", timeout=120_000)
    rows = page.locator("#try-results tbody tr")
    assert await rows.count() == 1  # a few seconds of speech: one segment
    # The same voice and words as the sample room's abusive turn: flagged, words marked.
    verdict = await rows.first.locator("td.verdict").inner_text()
    assert verdict.startswith("Block Abuse"), verdict
    assert await rows.first.get_attribute("data-suggestion") == "Block"
    assert await rows.first.locator("mark").count() >= 1
    assert "try-me.wav" in await page.inner_text("#try-summary")
    _, found = await asyncio.to_thread(daemon.request, "GET", "/v1/results?limit=1000")
    assert not [r for r in found["results"] if r["segment"]["stream_id"].startswith("try-")]


async def usage_and_its_csv(page: Page, daemon: DaemonProcess, incident: dict[str, Any]) -> None:
    await page.click("nav >> text=Usage")
    await page.wait_for_url("**/console/usage")
    await page.locator("#usage-days svg rect[data-part=minutes_moderated]").first.wait_for()
    label = page.locator(f"#usage-labels svg rect[data-label='{incident['label']}']")
    assert await label.count() == 1
    async with page.expect_download() as download_info:
        await page.click("#usage-csv")
    download = await download_info.value
    assert download.suggested_filename.startswith("streamguard-usage-")
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert tuple(text.splitlines()[0].split(",")) == USAGE_COLUMNS
    day = incident["started_at"][:10]
    flagged = [r for r in rows if (r["day"], r["label"]) == (day, incident["label"])]
    assert flagged, rows
    assert int(flagged[0]["segments"]) >= incident["segments"]
    _, usage = await asyncio.to_thread(daemon.request, "GET", "/v1/usage")
    assert {(r["day"], r["label"]) for r in rows} <= {
        (r["day"], r["label"]) for r in usage["usage"]
    }


async def test_a_frame_hit_shows_its_picture_in_the_incident(
    tmp_path: Path, browser: Browser
) -> None:
    show = SceneShow(seeds=(1, 2, 3), scene_seconds=3, marked=(1,))  # scene 1: IMS's Review
    async with AmsEmulator(ToneEngine(), EmulatorOptions(keys=KEYS)) as emulator:
        image_engine = f'[image_engine]\ntype = "ims"\nendpoint = "{emulator.url}"\n'
        credentials = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
        daemon = DaemonProcess(tmp_path, INGEST + image_engine, env=credentials)
        try:
            await asyncio.to_thread(daemon.start)
            media = show.encode()
            async with IcecastServer(media, show.seconds, content_type="video/mp2t") as server:
                body = {"id": "room-v", "url": server.url, "room": "stage"}
                status, reply = await asyncio.to_thread(daemon.request, "POST", "/v1/streams", body)
                assert status == 201, reply
                incident = await wait_for_incident(daemon, 60)
            await see_the_frame(browser, f"http://127.0.0.1:{daemon.port}", incident)
            daemon.signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait) == 0
        finally:
            daemon.close()


async def see_the_frame(browser: Browser, base: str, incident: dict[str, Any]) -> None:
    page = await browser.new_page()
    await sign_in(page, base, f"/console/incidents/{incident['id']}")
    picture = page.locator("#timeline figure.frame img").first
    await picture.wait_for()
    assert "/v1/evidence/" in (await picture.get_attribute("src") or "")
    await page.wait_for_function(
        "() => { const i = document.querySelector('#timeline figure.frame img');"
        " return i !== null && i.complete && i.naturalWidth > 0 }",
        timeout=20_000,
    )
    assert await picture.evaluate("i => i.naturalWidth") > 0
    caption = await page.text_content("#timeline figure.frame figcaption") or ""
    assert caption.startswith("frame taken ")
    assert "s into the stream" in caption
    assert await page.locator("#timeline audio").count() == 0  # a frame is not played

    # Found by its label on the search page, its "Play clip" shows the picture too.
    frame_id = await page.get_attribute("#timeline li", "data-segment")
    await page.click("nav >> text=Search")
    await page.fill("#search-form input[name=q]", incident["label"])
    await page.click("#search-form button[type=submit]")
    hit = page.locator(f"#hits li[data-segment='{frame_id}']")
    await hit.locator("button.play").click()
    await page.wait_for_function(
        "() => { const i = document.querySelector('#hits figure.frame img');"
        " return i !== null && i.complete && i.naturalWidth > 0 }",
        timeout=20_000,
    )
    await page.close()
