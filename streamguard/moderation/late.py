"""Verdicts that come late: recorded and alerted on like any other.

An AMS task can settle when nobody waits for it any more: the daemon was restarted (killed,
or its shutdown deadline recorded the segment as failed) and the task store polled the task
again. Its verdict still belongs to a segment someone spoke in, so it is recorded (replacing
any "failed" row) and goes through alerting, which publishes through the outbox like any
alert.

A late alert differs from a timely one in two ways a consumer can see. It has no evidence
clip: the clip was AMS's copy and is gone. And its ``detected_at`` is its segment's end, so
``latency_seconds`` counts from when the audio was heard and the alert is ``stale`` once that
is more than ``mqtt.stale_after_seconds`` ago, like an alert held back by a broker outage.

The restarted daemon may no longer run the stream (it was attached through the API, or
removed from the config), so every stream is remembered as it was last attached, without
its URL (which may hold a token): table ``attached_streams``, with what an alert says of a
stream (room, profile, metadata).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.segment import SegmentInfo
from streamguard.core.verdict import Verdict
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.policy import decide
from streamguard.state.db import Database
from streamguard.state.results import Results

__all__ = ["LateVerdicts"]

log = logging.getLogger("streamguard.app")

DEFAULT_PROFILE = "default"
NOT_ATTACHED = "(no longer attached)"
"""The URL of a stream known only from ``attached_streams``; nothing reads it."""

MIGRATIONS = [
    """CREATE TABLE attached_streams (
        stream_id TEXT PRIMARY KEY,
        room TEXT NOT NULL,
        profile TEXT NOT NULL,
        metadata TEXT NOT NULL,
        attached_at TEXT NOT NULL
    )""",
]


class LateVerdicts:
    """The engine's ``on_late_verdict``: record the verdict and alert on it.

    ``remember`` must see every stream before it runs (the daemon's streams call it on
    attach and change). ``profiles`` gives the current profiles (they change on SIGHUP); a
    stream whose profile is gone is judged with ``default`` (or the first profile), and one
    never remembered (last attached before streams were kept) also gets its stream id as
    room id. Both are logged.
    """

    def __init__(
        self,
        db: Database,
        *,
        profiles: Callable[[], Mapping[str, ProfileConfig]],
        results: Results,
        alerting: Alerting,
    ) -> None:
        self._db = db
        self._profiles = profiles
        self._results = results
        self._alerting = alerting
        self.handled = 0
        """Late verdicts recorded (and alerted on when risky) since start."""

    async def open(self) -> None:
        """Create or migrate the table of remembered streams."""
        await self._db.migrate("late", MIGRATIONS)

    async def remember(self, streams: Iterable[StreamConfig]) -> None:
        """Keep what alerts say of these streams, replacing what was kept of them."""
        now = datetime.now(UTC).isoformat()
        rows = [
            (s.id, s.room_id, s.profile, json.dumps(s.metadata, sort_keys=True), now)
            for s in streams
        ]
        await self._db.run(
            lambda conn: conn.executemany(
                "INSERT OR REPLACE INTO attached_streams"
                " (stream_id, room, profile, metadata, attached_at) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        )

    async def __call__(self, verdict: Verdict, segment: SegmentInfo | None) -> None:
        if segment is None:
            await self._replace_only(verdict)
            return
        stream = await self._stream(segment.stream_id)
        decision = decide(self._profiles()[stream.profile], stream, verdict)
        log.info(
            "late verdict for segment %s: %s (%s risk)",
            segment.id,
            verdict.outcome.value,
            decision.risk.value,
        )
        await self._results.record(stream.room_id, segment, verdict, decision.risk.value)
        await self._alerting.handle(stream, segment, verdict, None, detected_at=segment.ended_at)
        self.handled += 1

    async def _stream(self, stream_id: str) -> StreamConfig:
        """The stream as last attached, with a profile that still exists."""

        def read(conn: sqlite3.Connection) -> sqlite3.Row | None:
            cursor = conn.execute(
                "SELECT room, profile, metadata FROM attached_streams WHERE stream_id = ?",
                (stream_id,),
            )
            row: sqlite3.Row | None = cursor.fetchone()
            return row

        row = await self._db.run(read)
        if row is None:
            room, profile, metadata = stream_id, "", {}
            log.warning("late verdict for stream %s, which was never remembered", stream_id)
        else:
            room, profile, metadata = row[0], row[1], json.loads(row[2])
        profiles = self._profiles()
        if profile not in profiles:
            fallback = DEFAULT_PROFILE if DEFAULT_PROFILE in profiles else min(profiles)
            log.warning(
                "late verdict for stream %s of room %s: profile %r is not defined, judged with %r",
                stream_id,
                room,
                profile,
                fallback,
            )
            profile = fallback
        return StreamConfig(
            id=stream_id, url=NOT_ATTACHED, room=room, profile=profile, metadata=metadata
        )

    async def _replace_only(self, verdict: Verdict) -> None:
        # A task tracked before segments were kept with it: no alert can be built, but the
        # recorded result is brought up to date.
        stream_id = await self._results.stream_of(verdict.segment_id)
        if stream_id is None:
            log.warning("late verdict for unknown segment %s", verdict.segment_id)
            return
        stream = await self._stream(stream_id)
        risk = decide(self._profiles()[stream.profile], stream, verdict).risk.value
        if await self._results.replace_verdict(verdict, risk):
            self.handled += 1
            log.warning("late verdict for segment %s recorded without alert", verdict.segment_id)
