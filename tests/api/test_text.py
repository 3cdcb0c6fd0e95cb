"""``POST /v1/moderate/text`` through a small aiohttp app (stand-in embedder, real libraries)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamguard.api.openapi import OPENAPI
from streamguard.api.text import text_route
from streamguard.config.engine import LocalEngineConfig
from streamguard.config.policy import ProfileConfig
from streamguard.engines.local.embedder import Vectors
from streamguard.engines.local.moderator import TextModerator
from tests.engines.local.words import EXAMPLES_TOML, WordEmbedder


class _Held(WordEmbedder):
    """Embeds only once ``release`` is set, and says from which thread it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.threads: set[int] = set()

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.threads.add(threading.get_ident())
        self.release.wait(10)
        return super().embed(texts)


@pytest.fixture
def embedder() -> _Held:
    return _Held()


@pytest.fixture
async def client(tmp_path: Path, embedder: _Held) -> AsyncIterator[TestClient[Any, Any]]:
    examples = tmp_path / "examples.toml"
    examples.write_text(EXAMPLES_TOML)
    moderator = TextModerator(
        LocalEngineConfig(semantic=True, example_libraries=[examples]), embedder=embedder
    )
    embedder.release.set()
    moderator.load()
    profiles = {"default": ProfileConfig(), "lenient": ProfileConfig(ignored_words=["idiot"])}
    app = web.Application()
    app.add_routes([text_route(moderator, profiles, budget_seconds=0.5)])
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _post(client: TestClient[Any, Any], body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/moderate/text", json=body)
    return response.status, await response.json()


async def test_each_item_is_judged_in_order_with_its_own_request_id(
    client: TestClient[Any, Any],
) -> None:
    items = [
        {"id": 0, "text": "you idiot"},
        {"id": "b", "text": "i am outside your house tonight"},
        {"id": 2, "text": "the weather is nice today"},
    ]
    status, body = await _post(client, {"items": items})
    assert status == 200
    results = body["results"]
    assert [r["id"] for r in results] == [0, "b", 2]
    assert [r["suggestion"] for r in results] == ["Review", "Review", "Pass"]
    assert [r["error_code"] for r in results] == [0, 0, 0]
    assert len({r["request_id"] for r in results}) == 3
    assert results[0]["keywords"][0]["keyword"] == "idiot"
    assert (results[1]["label"], results[1]["signals"]) == ("Abuse", ["semantic"])
    assert results[1]["semantic"]["examples"][0]["text"] == "i am outside your house tonight"
    documented = OPENAPI["paths"]["/v1/moderate/text"]["post"]["responses"]["200"]
    jsonschema.validate(body, documented["content"]["application/json"]["schema"])


async def test_empty_and_over_long_texts_fail_alone(client: TestClient[Any, Any]) -> None:
    items = [{"id": 1, "text": "  "}, {"id": 2, "text": "é" * 4097}, {"id": 3, "text": "you idiot"}]
    status, body = await _post(client, {"items": items})
    assert status == 200
    empty, long, fine = body["results"]
    assert (empty["error_code"], empty["error_info"]) == (60003, "text is empty")
    assert (long["error_code"], long["error_info"]) == (93000, "text is 8194 bytes; at most 8192")
    assert "suggestion" not in empty
    assert "suggestion" not in long
    assert (fine["error_code"], fine["suggestion"]) == (0, "Review")


@pytest.mark.parametrize(
    ("body", "status", "code", "name"),
    [
        ({"items": [{"id": n, "text": "hi"} for n in range(11)]}, 400, 93008, "too_many_items"),
        ({"items": [{"id": 1, "text": "a"}, {"id": 1, "text": "b"}]}, 400, 93007, "duplicate_id"),
        ({"items": []}, 400, 60003, "invalid_request"),
        ({"texts": ["a"]}, 400, 60003, "invalid_request"),
        ({"items": [{"id": 1}]}, 400, 60003, "invalid_request"),
        ({"items": [{"id": True, "text": "a"}]}, 400, 60003, "invalid_request"),
        ({"items": [{"id": 1, "text": 5}]}, 400, 60003, "invalid_request"),
        ({"items": [{"id": 1, "text": "a"}], "profile": "nope"}, 400, 60003, "unknown_profile"),
    ],
)
async def test_a_malformed_request_is_refused_whole(
    client: TestClient[Any, Any], body: Any, status: int, code: int, name: str
) -> None:
    got_status, answer = await _post(client, body)
    assert got_status == status
    assert (answer["error"]["error_code"], answer["error"]["code"]) == (code, name)
    assert answer["error"]["message"]


async def test_a_body_that_is_not_json_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/moderate/text", data=b"{not json")
    assert response.status == 400
    assert (await response.json())["error"]["error_code"] == 60003


async def test_a_profile_applies_its_ignored_words(client: TestClient[Any, Any]) -> None:
    status, body = await _post(
        client, {"items": [{"id": 1, "text": "you idiot"}], "profile": "lenient"}
    )
    assert (status, body["results"][0]["suggestion"]) == (200, "Pass")


async def test_judging_runs_off_the_event_loop_and_answers_93006_past_the_budget(
    client: TestClient[Any, Any], embedder: _Held
) -> None:
    embedder.release.clear()  # the embedder now blocks until released
    embedder.threads.clear()
    status, body = await _post(client, {"items": [{"id": 1, "text": "hello there everyone"}]})
    embedder.release.set()
    assert (status, body["error"]["error_code"], body["error"]["code"]) == (504, 93006, "timed_out")
    assert threading.get_ident() not in embedder.threads
