"""The console in a real browser: Debian's chromium, headless, driven by Playwright, against
the whole daemon in a subprocess moderating a live room with the local engine.

Sign in, see the room, open the incident it raised, the evidence clip loads in the page's
``<audio>`` element (through its signed URL, without the token), mark a false positive, and
the API lists that feedback. Every request the page makes stays on the daemon's address.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from streamguard.testing.media_servers import IcecastServer
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
