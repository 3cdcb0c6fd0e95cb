"""The PostgreSQL schema (fleet mode), each component's migrations in order — the same rule
as ``state/schema.py`` for SQLite: append a step to change a table, never edit or reorder one
that shipped, never rename a component.

Times that decide ownership (leases, heartbeats, outbox claims) are the database's own
``now()``: the instances' clocks may disagree, the one database does not.
"""

from __future__ import annotations

from typing import LiteralString

__all__ = ["SCHEMA"]

FLEET_MIGRATIONS: list[LiteralString] = [
    # Every instance that ever joined; alive while heartbeat_at is recent.
    """CREATE TABLE fleet_instances (
        instance_id TEXT PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL,
        heartbeat_at TIMESTAMPTZ NOT NULL,
        draining BOOLEAN NOT NULL DEFAULT false,
        capacity INTEGER
    )""",
    # The desired set of streams, whoever attached them, and who runs each: the lease.
    # ``generation`` is drawn from ``lease_generations`` at every change of holder (never
    # reused, even by a stream detached and attached again); a write carries the generation
    # its writer holds and is refused when it is not the current one (fencing).
    "CREATE SEQUENCE lease_generations",
    """CREATE TABLE desired_streams (
        stream_id TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        config JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        owner TEXT,
        lease_until TIMESTAMPTZ,
        generation BIGINT NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX desired_streams_owner ON desired_streams (owner)",
    # Every change of owner: who had the stream, who has it, and how it moved (``claim`` of
    # a stream nobody held, ``takeover`` of an expired lease, ``release`` on drain or shed).
    """CREATE TABLE lease_history (
        id BIGSERIAL PRIMARY KEY,
        stream_id TEXT NOT NULL,
        generation BIGINT NOT NULL,
        kind TEXT NOT NULL,
        from_owner TEXT,
        to_owner TEXT,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX lease_history_stream ON lease_history (stream_id, id)",
]
"""Kept by ``state/postgres/fleet.py``."""

RESULTS_MIGRATIONS: list[LiteralString] = [
    # As SQLite's ``results``, plus who wrote the row under which lease generation.
    """CREATE TABLE results (
        segment_id TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        ended_at TIMESTAMPTZ NOT NULL,
        duration DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        suggestion TEXT NOT NULL,
        label TEXT NOT NULL,
        score INTEGER NOT NULL,
        risk TEXT NOT NULL,
        engine TEXT NOT NULL,
        reason TEXT NOT NULL,
        segment JSONB NOT NULL,
        verdict JSONB NOT NULL,
        owner TEXT,
        generation BIGINT,
        search TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX results_stream_time ON results (stream_id, started_at)",
    "CREATE INDEX results_label ON results (label, started_at)",
    # ``search`` holds whole words between spaces (``results.search_words``): rows written
    # before keep their lowered text, cut into words here (diacritics stay on those).
    "UPDATE results SET search = ' ' || trim(regexp_replace(search, '[^[:alnum:]]+', ' ', 'g'))"
    " || ' '",
]
"""Kept by ``state/postgres/results.py``."""

OUTBOX_MIGRATIONS: list[LiteralString] = [
    # As SQLite's ``alerts_outbox``, shared: ``origin`` wrote it; a publisher claims messages
    # (``claimed_by`` until ``claimed_until``) so two instances do not send the same one, and
    # a dead instance's messages and claims are taken by the living.
    """CREATE TABLE alerts_outbox (
        seq BIGSERIAL PRIMARY KEY,
        message_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        origin TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until TIMESTAMPTZ
    )""",
    """CREATE TABLE outbox_dead_letters (
        id BIGSERIAL PRIMARY KEY,
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        failed_at DOUBLE PRECISION NOT NULL,
        error TEXT NOT NULL
    )""",
]
"""Kept by ``state/postgres/outbox.py``."""

FEEDBACK_MIGRATIONS: list[LiteralString] = [
    # As SQLite's ``feedback``, shared: any instance's API records and answers for the fleet.
    """CREATE TABLE feedback (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        target_type TEXT NOT NULL,
        target_id TEXT NOT NULL,
        label TEXT NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX feedback_target ON feedback (target_id)",
]
"""Kept by ``state/postgres/feedback.py``."""

INCIDENTS_MIGRATIONS: list[LiteralString] = [
    # As SQLite's incident history, shared; ``seq`` orders rows written in the same instant.
    # Times are the alert's ISO 8601 UTC strings, as in SQLite (they sort as they read).
    """CREATE TABLE incidents (
        seq BIGSERIAL,
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
        seq BIGSERIAL,
        alert_id TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        event TEXT NOT NULL,
        segment_id TEXT NOT NULL,
        detected_at TEXT NOT NULL,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX incident_alerts_incident ON incident_alerts (incident_id, detected_at)",
]
"""Kept by ``state/postgres/incidents.py``."""

WEBHOOKS_MIGRATIONS: list[LiteralString] = [
    # Each destination some live instance configures, and which instance sends its alerts
    # now (``holder`` until ``held_until``); ``webhook_listings``: who configures it.
    """CREATE TABLE webhook_destinations (
        destination TEXT PRIMARY KEY,
        holder TEXT,
        held_until TIMESTAMPTZ
    )""",
    """CREATE TABLE webhook_listings (
        destination TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        PRIMARY KEY (destination, instance_id)
    )""",
    # One row per alert and destination, deleted once delivered (or filtered, or
    # dead-lettered); ``seq`` is the alert's outbox ``seq``.
    """CREATE TABLE webhook_deliveries (
        destination TEXT NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (destination, seq)
    )""",
    # Filled in the outbox insert's own transaction, whichever instance wrote the alert.
    """CREATE FUNCTION webhook_deliveries_fill() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.kind = 'alert' THEN
            INSERT INTO webhook_deliveries (destination, seq, message_id, payload, created_at)
            SELECT destination, NEW.seq, NEW.message_id, NEW.payload, NEW.created_at
            FROM webhook_destinations;
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER alerts_outbox_webhooks AFTER INSERT ON alerts_outbox
        FOR EACH ROW EXECUTE FUNCTION webhook_deliveries_fill()""",
]
"""Kept by ``state/postgres/webhooks.py``."""

EVIDENCE_MIGRATIONS: list[LiteralString] = [
    # Evidence clips and frame pictures, shared: any instance serves them (size bounded and
    # pruned like the evidence directory).
    """CREATE TABLE evidence_clips (
        segment_id TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        body BYTEA NOT NULL,
        kept_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX evidence_clips_kept ON evidence_clips (kept_at)",
    # Secrets the whole fleet shares (the key that signs evidence URLs).
    "CREATE TABLE fleet_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    # Clips are served by byte ranges (``substring``): kept uncompressed (media hardly
    # compresses), a range reads only its own TOAST chunks, not the whole clip.
    "ALTER TABLE evidence_clips ALTER COLUMN body SET STORAGE EXTERNAL",
]
"""Kept by ``state/postgres/evidence.py``."""

JOURNAL_MIGRATIONS: list[LiteralString] = [
    # Every open incident of the fleet with the instance that runs it and its latest alert
    # JSON: a live instance ends those of a dead one.
    """CREATE TABLE open_incidents (
        incident_id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        last_alert TEXT NOT NULL
    )""",
    "CREATE INDEX open_incidents_instance ON open_incidents (instance_id)",
]
"""Kept by ``state/postgres/journal.py``."""
AMS_TASKS_MIGRATIONS: list[LiteralString] = [
    # As SQLite's ``ams_segments``, shared: who wrote the row (``owner``) under which lease
    # generation, when (the database's clock: adoption's grace period), and who settled it.
    # A row is written when its Create call is made (queued segments stay in memory).
    """CREATE TABLE ams_tasks (
        segment_id TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        biz_type TEXT,
        clip TEXT NOT NULL,
        owned_clip BOOLEAN NOT NULL,
        duration DOUBLE PRECISION NOT NULL,
        clip_offset DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        task_id TEXT,
        ams_status TEXT,
        submit_attempts INTEGER NOT NULL DEFAULT 0,
        deliveries INTEGER NOT NULL DEFAULT 0,
        polls INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        submitted_at DOUBLE PRECISION,
        accepted_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        verdict TEXT,
        excerpt TEXT NOT NULL,
        segment TEXT NOT NULL,
        owner TEXT NOT NULL,
        generation BIGINT,
        written_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        settled_by TEXT
    )""",
    "CREATE INDEX ams_tasks_task ON ams_tasks (task_id)",
    "CREATE INDEX ams_tasks_open ON ams_tasks (stream_id) WHERE state IN"
    " ('queued', 'submitting', 'pending')",
    # A settled row's verdict is handed on (to its waiter, or recorded as a late verdict)
    # after the settle commits: ``handed_on`` stays false till then, and a row left so for
    # the grace period after ``settled_at`` is handed on again by whoever may settle it.
    "ALTER TABLE ams_tasks ADD COLUMN handed_on BOOLEAN NOT NULL DEFAULT true",
    "ALTER TABLE ams_tasks ADD COLUMN settled_at TIMESTAMPTZ",
    "CREATE INDEX ams_tasks_unconfirmed ON ams_tasks (settled_at) WHERE NOT handed_on",
]
"""Kept by ``state/postgres/ams_tasks.py``."""

SCHEMA: dict[str, list[LiteralString]] = {
    "fleet": FLEET_MIGRATIONS,
    "results": RESULTS_MIGRATIONS,
    "outbox": OUTBOX_MIGRATIONS,
    "feedback": FEEDBACK_MIGRATIONS,
    "incidents": INCIDENTS_MIGRATIONS,
    "webhooks": WEBHOOKS_MIGRATIONS,
    "evidence": EVIDENCE_MIGRATIONS,
    "journal": JOURNAL_MIGRATIONS,
    "ams_tasks": AMS_TASKS_MIGRATIONS,
}
"""Every component's migrations, applied in this order."""
