"""A reload names every changed section that only a restart applies, in both modes."""

from __future__ import annotations

import logging

import pytest

from streamguard.app.reload import warn_restart_sections
from streamguard.config import Config

BASE = {"mqtt": {"host": "127.0.0.1"}}
HOOK = {"name": "ops", "url": "http://127.0.0.1:9/h"}


def test_changed_webhooks_and_state_are_named_as_needing_a_restart(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMGUARD_WEBHOOK_OPS_SECRET", "s")
    old = Config.model_validate(BASE)
    new = Config.model_validate(
        {**BASE, "webhooks": [HOOK], "state": {"url": "sqlite:///other.db"}}
    )
    with caplog.at_level(logging.WARNING):
        changed = warn_restart_sections(old, new)
    assert changed == ["state", "webhooks"]
    assert "[webhooks] changed; it takes effect after a restart" in caplog.text
    assert warn_restart_sections(old, Config.model_validate(BASE)) == []
