"""Evidence clips and frame pictures in fleet mode: kept in the shared database beside the
incident history, so any instance serves them, even once the instance that kept them is
gone.

``evidence_clips`` holds each clip's bytes (``bytea``) with its digest, under the same
retention as the evidence directory (``[evidence] keep_days``, then the oldest until the
table fits ``max_megabytes``; never the clip just kept, which an alert is about to point at).
A clip over ``MAX_CLIP_BYTES`` is not shared (it stays on the instance that kept it).

``fleet_secrets`` holds the key that signs evidence URLs, drawn once for the whole fleet, so
a URL handed out by one instance plays on any other.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from streamguard.state.postgres.database import Connection, PgDatabase

__all__ = ["MAX_CLIP_BYTES", "PgEvidenceClips", "SharedClip", "evidence_url_key"]

MAX_CLIP_BYTES = 16_000_000
"""The largest clip shared (a 60-s WAV at 16 kHz mono is under 2 MB)."""


@dataclass(frozen=True, slots=True)
class SharedClip:
    """A clip as the database keeps it."""

    segment_id: str
    file_name: str
    """``{segment id}{suffix}``: the suffix says the media type."""
    sha256: str
    body: bytes


class PgEvidenceClips:
    """Keep, read and prune the shared clips."""

    def __init__(self, db: PgDatabase, *, keep_seconds: float, max_bytes: int) -> None:
        self._db = db
        self.keep = timedelta(seconds=keep_seconds)
        self.max_bytes = max_bytes

    async def put(self, stream_id: str, clip: SharedClip) -> int:
        """Keep ``clip`` (again: the latest wins) and apply retention in the same
        transaction; return how many clips retention deleted."""
        if len(clip.body) > MAX_CLIP_BYTES:
            raise ValueError(f"clip of {len(clip.body)} bytes is over {MAX_CLIP_BYTES}")

        async def insert(conn: Connection) -> int:
            await conn.execute(
                "INSERT INTO evidence_clips (segment_id, stream_id, file_name, sha256, size,"
                " body, kept_at) VALUES (%s, %s, %s, %s, %s, %s, now())"
                " ON CONFLICT (segment_id) DO UPDATE SET file_name = excluded.file_name,"
                " sha256 = excluded.sha256, size = excluded.size, body = excluded.body,"
                " kept_at = excluded.kept_at",
                (
                    clip.segment_id,
                    stream_id,
                    clip.file_name,
                    clip.sha256,
                    len(clip.body),
                    clip.body,
                ),
            )
            return await self._prune(conn, clip.segment_id)

        return await self._db.run(insert)

    async def get(self, segment_id: str) -> SharedClip | None:
        """The clip of ``segment_id``, or None (never kept here, or deleted by retention)."""

        async def select(conn: Connection) -> SharedClip | None:
            cursor = await conn.execute(
                "SELECT segment_id, file_name, sha256, body FROM evidence_clips"
                " WHERE segment_id = %s",
                (segment_id,),
            )
            row = await cursor.fetchone()
            return None if row is None else SharedClip(row[0], row[1], row[2], bytes(row[3]))

        return await self._db.run(select)

    async def prune(self) -> int:
        """Apply retention now; return how many clips were deleted."""

        async def prune(conn: Connection) -> int:
            return await self._prune(conn, None)

        return await self._db.run(prune)

    async def _prune(self, conn: Connection, just_kept: str | None) -> int:
        cursor = await conn.execute(
            _PRUNE, {"keep": self.keep, "max": self.max_bytes, "just": just_kept}
        )
        return cursor.rowcount


async def evidence_url_key(db: PgDatabase) -> bytes:
    """The fleet's key for signing evidence URLs (drawn by the first instance to ask)."""

    async def key(conn: Connection) -> bytes:
        await conn.execute(
            "INSERT INTO fleet_secrets (name, value) VALUES ('evidence_urls', %s)"
            " ON CONFLICT (name) DO NOTHING",
            (secrets.token_bytes(32),),
        )
        cursor = await conn.execute("SELECT value FROM fleet_secrets WHERE name = 'evidence_urls'")
        row = await cursor.fetchone()
        assert row is not None  # inserted above if it was not there
        return bytes(row[0])

    return await db.run(key)


_PRUNE = """
WITH ranked AS (
    SELECT segment_id, kept_at,
        sum(size) OVER (ORDER BY kept_at DESC, segment_id DESC) AS newer_total
    FROM evidence_clips
)
DELETE FROM evidence_clips AS e USING ranked AS r
WHERE e.segment_id = r.segment_id
  AND e.segment_id IS DISTINCT FROM %(just)s
  AND (r.kept_at < now() - %(keep)s OR r.newer_total > %(max)s)
"""
"""Delete clips older than the retention, then the oldest until the newest fit the bound
(a clip goes when it and everything kept after it exceed ``max_bytes``)."""
