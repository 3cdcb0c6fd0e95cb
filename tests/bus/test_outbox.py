"""The outbox on its own (no broker), the JSON-lines sink, and the package's public names."""

from __future__ import annotations

import io
import json

import jsonschema

import streamguard.moderation
from streamguard.bus.sink import JsonLinesAlerts
from streamguard.config.policy import ProfileConfig
from streamguard.core.verdict import Outcome
from streamguard.moderation.alert import alert_schema
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.outbox import MessageKind
from streamguard.testing.alerts import risky, segment, stream
from tests.support.backends import Backend


async def test_outbox_is_durable_ordered_and_idempotent(backend: Backend) -> None:
    now = [100.0]
    outbox = backend.outbox(clock=lambda: now[0])
    await outbox.open()
    assert await outbox.add(MessageKind.ALERT, "a1", "t/1", "{}")
    now[0] += 5
    assert await outbox.add(MessageKind.EVENT, "e1", "t/2", "{}")
    assert not await outbox.add(MessageKind.ALERT, "a1", "t/1", "{}")  # already waiting
    assert (outbox.depth, outbox.oldest_age()) == (2, 5.0)
    first, second = await outbox.peek(10)
    assert (first.message_id, second.message_id) == ("a1", "e1")
    await outbox.remove([first.seq])
    assert (outbox.depth, outbox.oldest_created_at) == (1, 105.0)
    # A new process finds what was left.
    await backend.reopen()
    reopened = backend.outbox()
    await reopened.open()
    assert reopened.depth == 1
    (left,) = await reopened.peek(10)
    assert (left.message_id, left.kind, left.topic) == ("e1", MessageKind.EVENT, "t/2")
    await reopened.remove([left.seq])
    await reopened.wait_empty()
    assert reopened.oldest_age() is None


async def test_json_lines_sink_prints_alerts_and_logs_events() -> None:
    out, log = io.StringIO(), io.StringIO()
    sink = JsonLinesAlerts(out, log)
    async with Alerting({"default": ProfileConfig()}, sink, instance_id="cli") as alerting:
        seg = segment()
        await Outcomes(alerting.profiles, alerting).handle(stream(), seg, risky(seg), None)
        failed = segment(seq=1)
        await Outcomes(alerting.profiles, alerting).handle(
            stream(), failed, risky(failed, outcome=Outcome.FAILED), None
        )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [a["incident"]["event"] for a in lines] == ["new", "end"]
    for alert in lines:
        jsonschema.validate(alert, alert_schema())
        assert alert["published_at"] is not None
    (event,) = [json.loads(line)["event"] for line in log.getvalue().splitlines()]
    assert (event["kind"], event["segment_id"]) == ("segment_failed", failed.id)


def test_public_names_of_the_alerts_package() -> None:
    for name in streamguard.moderation.__all__:
        assert hasattr(streamguard.moderation, name), name
    public = {
        name
        for name, value in vars(streamguard.moderation).items()
        if not name.startswith("_") and not isinstance(value, type(streamguard))
    }
    assert public == set(streamguard.moderation.__all__)
