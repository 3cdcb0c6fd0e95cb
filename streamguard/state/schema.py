"""The database schema, all of it in one place: each component's migrations in order.

``Database.open`` applies every list below: a component at schema version ``n`` (the
``schema_versions`` table) gets ``statements[n:]``. Append to a list to change a table; never
edit or reorder a step that has shipped, and never rename a component (existing databases
know it by name).
"""

from __future__ import annotations

__all__ = ["SCHEMA"]

RESULTS_MIGRATIONS: list[str] = [
    """CREATE TABLE results (
        segment_id TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT NOT NULL,
        duration REAL NOT NULL,
        outcome TEXT NOT NULL,
        suggestion TEXT NOT NULL,
        label TEXT NOT NULL,
        score INTEGER NOT NULL,
        risk TEXT NOT NULL,
        engine TEXT NOT NULL,
        reason TEXT NOT NULL,
        segment TEXT NOT NULL,
        verdict TEXT NOT NULL
    )""",
    "CREATE INDEX results_stream_time ON results (stream_id, started_at)",
    "CREATE INDEX results_label ON results (label, started_at)",
]
"""Kept by ``state/results.py``."""

FEEDBACK_MIGRATIONS: list[str] = [
    """CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        target_type TEXT NOT NULL,
        target_id TEXT NOT NULL,
        label TEXT NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
]
"""Kept by ``state/feedback.py``."""

ALERTS_MIGRATIONS: list[str] = [
    """CREATE TABLE alerts_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
]
"""Kept by ``state/outbox.py``."""

ALERTS_INCIDENTS_MIGRATIONS: list[str] = [
    """CREATE TABLE alerts_incidents (
        incident_id TEXT PRIMARY KEY,
        last_alert TEXT NOT NULL
    )""",
]
"""Kept by ``state/journal.py``."""

LATE_MIGRATIONS: list[str] = [
    """CREATE TABLE attached_streams (
        stream_id TEXT PRIMARY KEY,
        room TEXT NOT NULL,
        profile TEXT NOT NULL,
        metadata TEXT NOT NULL,
        attached_at TEXT NOT NULL
    )""",
]
"""Kept by ``state/attached.py``."""

DAEMON_MIGRATIONS: list[str] = ["CREATE TABLE daemon_heartbeat (id INTEGER PRIMARY KEY, at TEXT)"]
"""Kept by ``state/heartbeat.py``."""

AMS_MIGRATIONS: list[str] = [
    """
    CREATE TABLE ams_segments (
        segment_id TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        biz_type TEXT,
        clip TEXT NOT NULL,
        owned_clip INTEGER NOT NULL,
        duration REAL NOT NULL,
        clip_offset REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        task_id TEXT,
        ams_status TEXT,
        submit_attempts INTEGER NOT NULL DEFAULT 0,
        deliveries INTEGER NOT NULL DEFAULT 0,
        polls INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        submitted_at REAL,
        accepted_at REAL,
        updated_at REAL NOT NULL,
        due_at REAL NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        verdict TEXT
    )
    """,
    "CREATE INDEX ams_segments_state ON ams_segments (state, due_at)",
    "CREATE INDEX ams_segments_task ON ams_segments (task_id)",
    # The clip may join several pieces of the segment (its speech); empty: one piece that
    # starts at clip_offset and lasts duration (rows written before pieces were kept).
    "ALTER TABLE ams_segments ADD COLUMN excerpt TEXT NOT NULL DEFAULT ''",
    # ``SegmentInfo.to_json``: a verdict that settles after a restart is still alerted on.
    # Empty in rows written before it was kept.
    "ALTER TABLE ams_segments ADD COLUMN segment TEXT NOT NULL DEFAULT ''",
]
"""Kept by ``state/ams_tasks.py``."""

DEAD_LETTERS_MIGRATIONS: list[str] = [
    # A message the publisher could never deliver (a poison message), moved out of
    # alerts_outbox so the rest goes on; kept whole for a person to inspect or replay.
    """CREATE TABLE outbox_dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        failed_at REAL NOT NULL,
        error TEXT NOT NULL
    )""",
]
"""Kept by ``state/dead_letters.py``."""

DESIRED_MIGRATIONS: list[str] = [
    # One row per stream the daemon should run; ``config`` is the whole ``StreamConfig`` as
    # JSON (URL included). Fleet mode adds ownership (owner, lease_until, generation) here.
    """CREATE TABLE desired_streams (
        stream_id TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
]
"""Kept by ``state/desired.py``."""

INCIDENTS_MIGRATIONS: list[str] = [
    # Every incident ever raised (the journal keeps only open ones), written as its alerts
    # are raised: one row per incident, one per alerting segment, one per alert sent.
    """CREATE TABLE incidents (
        incident_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        label TEXT NOT NULL,
        peak_risk TEXT NOT NULL,
        started_at TEXT NOT NULL,
        last_segment_at TEXT NOT NULL,
        ended_at TEXT,
        segments INTEGER NOT NULL
    )""",
    "CREATE INDEX incidents_started ON incidents (started_at)",
    "CREATE INDEX incidents_room ON incidents (room_id, started_at)",
    """CREATE TABLE incident_segments (
        incident_id TEXT NOT NULL,
        segment_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        risk TEXT NOT NULL,
        segment TEXT NOT NULL,
        judgement TEXT NOT NULL,
        verdict TEXT NOT NULL,
        evidence TEXT,
        PRIMARY KEY (incident_id, segment_id)
    )""",
    "CREATE INDEX incident_segments_segment ON incident_segments (segment_id)",
    """CREATE TABLE incident_alerts (
        alert_id TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        event TEXT NOT NULL,
        segment_id TEXT NOT NULL,
        detected_at TEXT NOT NULL,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX incident_alerts_incident ON incident_alerts (incident_id, detected_at)",
]
"""Kept by ``state/incidents.py``."""

_SEARCH_TRANSCRIPT = "coalesce(json_extract({row}.verdict, '$.text'), '')"
_SEARCH_LABELS = (
    "{row}.label || ' ' || coalesce(json_extract({row}.verdict, '$.sub_label'), '') || ' ' ||"
    " coalesce((SELECT group_concat(coalesce(json_extract(k.value, '$.keyword'), '') || ' ' ||"
    " coalesce(json_extract(k.value, '$.label'), '') || ' ' ||"
    " coalesce(json_extract(k.value, '$.sub_label'), ''), ' ')"
    " FROM json_each({row}.verdict, '$.keywords') AS k), '')"
)


def _search_row(row: str) -> str:
    """The transcript and labels columns of ``results_search`` for a ``results`` row."""
    return f"{_SEARCH_TRANSCRIPT.format(row=row)}, {_SEARCH_LABELS.format(row=row)}"


RESULTS_SEARCH_MIGRATIONS: list[str] = [
    # Full-text search over transcripts and labels (label, sub-label, keywords and their
    # labels). The FTS row shares the result's rowid. ``Results.record`` writes with INSERT OR
    # REPLACE, whose implicit delete fires no trigger: the insert trigger replaces by rowid,
    # and a row orphaned that way matches no result (queries join on rowid).
    """CREATE VIRTUAL TABLE results_search USING fts5(
        transcript, labels, tokenize = 'unicode61 remove_diacritics 2'
    )""",
    "INSERT INTO results_search (rowid, transcript, labels)"
    f" SELECT rowid, {_search_row('results')} FROM results",
    "CREATE TRIGGER results_search_insert AFTER INSERT ON results BEGIN"
    " INSERT OR REPLACE INTO results_search (rowid, transcript, labels)"
    f" VALUES (new.rowid, {_search_row('new')}); END",
    "CREATE TRIGGER results_search_update AFTER UPDATE ON results BEGIN"
    " INSERT OR REPLACE INTO results_search (rowid, transcript, labels)"
    f" VALUES (new.rowid, {_search_row('new')}); END",
    "CREATE TRIGGER results_search_delete AFTER DELETE ON results BEGIN"
    " DELETE FROM results_search WHERE rowid = old.rowid; END",
]
"""Kept in step with ``results`` by its triggers; read by ``state/results.py``."""

RESULTS_USAGE_MIGRATIONS: list[str] = [
    # ``GET /v1/usage``: a range of days over every stream, answered from the index alone
    # (covering), and the retention prune's ``started_at <`` uses it too.
    "CREATE INDEX results_usage ON results (started_at, label, outcome, duration)",
]
"""Read by ``state/usage.py``."""

WEBHOOKS_MIGRATIONS: list[str] = [
    # Webhooks read the alerts of the MQTT outbox (alerts_outbox), whose rows go on PUBACK:
    # a trigger copies each alert into webhook_feed, in the same transaction that writes it,
    # while at least one destination is configured. Each destination keeps its own cursor
    # (the last seq it delivered or dead-lettered); a feed row goes once every cursor passed it.
    """CREATE TABLE webhook_cursors (
        destination TEXT PRIMARY KEY,
        delivered_seq INTEGER NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE webhook_feed (
        seq INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE TRIGGER webhook_feed_alert AFTER INSERT ON alerts_outbox"
    " WHEN new.kind = 'alert' AND EXISTS (SELECT 1 FROM webhook_cursors) BEGIN"
    " INSERT OR IGNORE INTO webhook_feed (seq, message_id, payload, created_at)"
    " VALUES (new.seq, new.message_id, new.payload, new.created_at); END",
]
"""Kept by ``state/webhooks.py``."""

SCHEMA: dict[str, list[str]] = {
    "results": RESULTS_MIGRATIONS,
    "feedback": FEEDBACK_MIGRATIONS,
    "alerts": ALERTS_MIGRATIONS,
    "alerts_incidents": ALERTS_INCIDENTS_MIGRATIONS,
    "late": LATE_MIGRATIONS,
    "daemon": DAEMON_MIGRATIONS,
    "ams": AMS_MIGRATIONS,
    "dead_letters": DEAD_LETTERS_MIGRATIONS,
    "desired": DESIRED_MIGRATIONS,
    "incidents": INCIDENTS_MIGRATIONS,
    "results_search": RESULTS_SEARCH_MIGRATIONS,
    "results_usage": RESULTS_USAGE_MIGRATIONS,
    "webhooks": WEBHOOKS_MIGRATIONS,
}
"""Every component's migrations, applied in this order."""
