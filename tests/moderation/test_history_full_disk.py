"""The incident history of alerts raised while the disk is full is written when it returns.

Found by the fault-injection soak (``bench.soak``): alerts raised on a full disk were
delivered, but their incidents, segments and alerts were missing from the console's
history for good. Alerting now sends history writes through the spool like its journal and
alerts, so they wait in memory, in order, and are written once the disk takes them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from streamguard.config.policy import ProfileConfig
from streamguard.core.backoff import Backoff
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.state.incidents import IncidentHistory, IncidentQuery
from streamguard.state.spool import Spool
from streamguard.testing.alerts import RecordingSink, risky, segment, stream
from tests.state.small_disk import small_disk

PROFILES = {"default": ProfileConfig(cooldown_seconds=0, incident_quiet_seconds=3600)}
QUICK = Backoff(initial=0.05, maximum=0.2, multiplier=2.0, jitter=0.0)


async def test_history_of_alerts_raised_on_a_full_disk_is_written_when_it_returns(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk", "2m") as disk:
        async with Database(disk.path / "s.db") as db, Spool(retry=QUICK) as spool:
            sink = RecordingSink()
            async with Alerting(PROFILES, sink, instance_id="t", db=db, writes=spool) as alerting:
                outcomes = Outcomes(PROFILES, alerting)
                room = stream("s1", "room-1")
                await asyncio.to_thread(disk.fill)
                for seq in range(3):
                    seg = segment("s1", seq)
                    await outcomes.handle(room, seg, risky(seg), None)
                assert spool.depth > 0  # nothing could be written: it waits
                disk.free()
                async with asyncio.timeout(30):
                    await spool.wait_written()
                raised = [a.alert_id for a in sink.alerts]
                history = IncidentHistory(db)
                (incident,) = await history.query(IncidentQuery())
                full = await history.get(incident["id"])
    assert full is not None
    assert len(raised) == 3
    assert [a["alert_id"] for a in full["alerts"]] == raised
    assert [s["segment"]["id"] for s in full["segments"]] == [segment("s1", n).id for n in range(3)]
