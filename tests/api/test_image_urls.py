"""``POST /v1/moderate/image`` with ``url`` items: fetched from a loopback server through the
streams' address policy (127.0.0.2 denied, as in ``tests/ingest/test_address_policy.py``,
and served too, so a refusal is the policy's and not an empty port), redirects checked
again, the size cap, the timeout, and the content type found by decoding."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from streamguard.api import image as image_api
from streamguard.api.image import image_route
from streamguard.api.image_urls import ImageFetcher
from streamguard.config.ingest import AddressPolicyConfig
from streamguard.config.policy import ProfileConfig
from streamguard.ingest.addresses import POLICY_REFUSAL
from streamguard.testing.images import MarkerImageEngine, marked
from tests.support.tls import make_certificates

LIMIT = 200_000
"""A small cap for the test (the route's is 5 MB): what is over it is refused the same way."""


def png_of_marked() -> bytes:
    out = io.BytesIO()
    Image.fromarray(marked()).save(out, format="PNG")
    return out.getvalue()


def image_server() -> web.Application:
    picture = png_of_marked()

    async def image(request: web.Request) -> web.Response:
        # A wrong Content-Type: the route must not trust it.
        return web.Response(body=picture, content_type="text/plain")

    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["where"])

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
        await response.prepare(request)
        for _ in range(LIMIT // 10_000 + 5):
            await response.write(bytes(10_000))
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=picture)

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="<html>not an image</html>", content_type="image/png")

    app = web.Application()
    app.add_routes(
        [
            web.get("/marked.png", image),
            web.get("/to", to),
            web.get("/big", big),
            web.get("/slow", slow),
            web.get("/text", text),
        ]
    )
    return app


@pytest.fixture
async def origin() -> AsyncIterator[int]:
    """A port served on both 127.0.0.1 and the denied 127.0.0.2."""
    runner = web.AppRunner(image_server())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await web.TCPSite(runner, "127.0.0.2", port).start()
    yield port
    await runner.cleanup()


@pytest.fixture
async def api() -> AsyncIterator[TestClient[Any, Any]]:
    fetcher = ImageFetcher(
        AddressPolicyConfig.model_validate({"deny": ["127.0.0.2/32"]}), LIMIT, timeout=1.0
    )
    app = web.Application()
    app.add_routes(
        [image_route(MarkerImageEngine(), {"default": ProfileConfig()}, fetcher=fetcher)]
    )
    async with TestClient(TestServer(app)) as client:
        yield client


async def moderate(client: TestClient[Any, Any], urls: list[str]) -> list[dict[str, Any]]:
    items = [{"id": n, "url": url} for n, url in enumerate(urls)]
    response = await client.post(
        "/v1/moderate/image",
        data=json.dumps({"items": items}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 200
    results: list[dict[str, Any]] = (await response.json())["results"]
    return results


async def test_an_image_url_is_fetched_and_judged(api: TestClient[Any, Any], origin: int) -> None:
    here = f"http://127.0.0.1:{origin}"
    direct, redirected = await moderate(
        api, [f"{here}/marked.png", f"{here}/to?where={here}/marked.png"]
    )
    for result in (direct, redirected):
        assert (result["error_code"], result["suggestion"], result["label"]) == (0, "Block", "Porn")


async def test_a_denied_address_is_refused_also_behind_a_redirect(
    api: TestClient[Any, Any], origin: int
) -> None:
    denied = f"http://127.0.0.2:{origin}/marked.png"
    results = await moderate(
        api,
        [denied, f"http://127.0.0.1:{origin}/to?where={denied}", f"http://2130706434:{origin}/"],
    )
    for result in results:  # 2130706434 is 127.0.0.2 written as a number
        assert (result["error_code"], result["error_info"]) == (
            image_api.INVALID_ITEM,
            POLICY_REFUSAL,
        )
        assert "suggestion" not in result


async def test_oversize_slow_missing_and_unreadable_bodies_are_answered_per_item(
    api: TestClient[Any, Any], origin: int
) -> None:
    here = f"http://127.0.0.1:{origin}"
    big, slow, missing, text, ftp, good = await moderate(
        api,
        [
            f"{here}/big",
            f"{here}/slow",
            f"{here}/nothing-here",
            f"{here}/text",
            f"ftp://127.0.0.1:{origin}/marked.png",
            f"{here}/marked.png",
        ],
    )
    assert big["error_code"] == image_api.IMAGE_TOO_LARGE
    assert str(LIMIT) in big["error_info"]
    assert (slow["error_code"], slow["error_info"]) == (
        image_api.INVALID_ITEM,
        "no image within 1 s",
    )
    assert (missing["error_code"], missing["error_info"]) == (
        image_api.INVALID_ITEM,
        "the server answered HTTP 404",
    )
    assert text["error_code"] == image_api.INVALID_ITEM
    assert "not an image" in text["error_info"]  # its image/png Content-Type was not believed
    assert ftp["error_code"] == image_api.INVALID_ITEM
    assert "http" in ftp["error_info"]
    assert good["suggestion"] == "Block"


@pytest.fixture
async def tls_origin(tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    """The image server over HTTPS on 127.0.0.1 (and 127.0.0.2), and a context trusting it."""
    certificates = make_certificates(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(certificates.server_cert, certificates.server_key)
    runner = web.AppRunner(image_server())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=served)
    await site.start()
    port: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await web.TCPSite(runner, "127.0.0.2", port, ssl_context=served).start()
    yield port, ssl.create_default_context(cafile=str(certificates.ca))
    await runner.cleanup()


async def test_https_goes_through_the_policy_too(
    tls_origin: tuple[int, ssl.SSLContext],
) -> None:
    port, trusted = tls_origin
    fetcher = ImageFetcher(
        AddressPolicyConfig.model_validate({"deny": ["127.0.0.2/32"]}), LIMIT, tls=trusted
    )
    app = web.Application()
    app.add_routes(
        [image_route(MarkerImageEngine(), {"default": ProfileConfig()}, fetcher=fetcher)]
    )
    here, denied = f"https://127.0.0.1:{port}", f"https://127.0.0.2:{port}/marked.png"
    async with TestClient(TestServer(app)) as client:
        fetched, redirected = await moderate(
            client, [f"{here}/marked.png", f"{here}/to?where={denied}"]
        )
    assert (fetched["error_code"], fetched["suggestion"]) == (0, "Block")  # a CONNECT tunnel
    assert (redirected["error_code"], redirected["error_info"]) == (
        image_api.INVALID_ITEM,
        POLICY_REFUSAL,
    )
