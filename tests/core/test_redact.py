"""``redact``: the password of every URL in a text is masked, the rest kept as it was."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamguard.core.redact import redact, redact_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot open http://alice:s3cret@127.0.0.1:9/live.mp3: Connection refused",
            "cannot open http://alice:***@127.0.0.1:9/live.mp3: Connection refused",
        ),
        ("rtsp://admin:12345@10.0.0.2:554/s", "rtsp://admin:***@10.0.0.2:554/s"),
        ("HTTP://bob:p@ss:w@rd@host/x?y=1", "HTTP://bob:***@host/x?y=1"),  # unencoded @ and :
        ("hls+https://u:%40x@h/a.m3u8", "hls+https://u:***@h/a.m3u8"),
        ("http://:pw@host", "http://:***@host"),
        ("'http://u:p@h/a', 'rtmp://v:q@h/b'", "'http://u:***@h/a', 'rtmp://v:***@h/b'"),
        ("http://host:8080/x mail a:b@c", "http://host:8080/x mail a:b@c"),  # no userinfo
        ("http://token@host/", "http://token@host/"),  # no password to hide
        ("no url here: a:b@c", "no url here: a:b@c"),
    ],
)
def test_passwords_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_none_stays_none() -> None:
    assert redact(None) is None


@given(user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), password=st.text(min_size=1))
def test_no_password_survives(user: str, password: str) -> None:
    password = "".join(c for c in password if c not in "/?#<>" and not c.isspace()) or "x"
    text = f"reading http://{user}:{password}@example.invalid/live failed"
    assert redact(text) == f"reading http://{user}:***@example.invalid/live failed"


async def test_long_hostile_texts_are_redacted_without_hanging() -> None:
    # A backtracking pattern would take minutes on these; the bound only catches such a hang
    # (speed itself is not asserted here).
    texts = (
        "a://" + "c" * 200_000,
        "x://y:" + "c" * 200_000,
        "://" + "ab " * 100_000,
        "x://y:" + "c" * 200_000 + "@h/",
    )
    async with asyncio.timeout(60):
        redacted = [await asyncio.to_thread(redact, text) for text in texts]
    assert redacted[:3] == list(texts[:3])  # no "@": no credentials, nothing to hide
    assert redacted[3] == "x://y:***@h/"


def test_json_values_are_redacted_throughout() -> None:
    value = {"url": "http://u:p@h/", "list": ["x", "rtmp://a:b@h/"], "n": 3, "none": None}
    assert redact_json(value) == {
        "url": "http://u:***@h/",
        "list": ["x", "rtmp://a:***@h/"],
        "n": 3,
        "none": None,
    }
