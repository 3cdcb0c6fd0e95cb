"""Evidence clips and frame pictures in fleet mode: kept in the shared database beside the
incident history, so any instance serves them, even once the instance that kept them is
gone.

``evidence_clips`` holds each clip's bytes (``bytea``) with its digest, under the same
retention as the evidence directory (``[evidence] keep_days``, then the oldest until the
table fits ``max_megabytes``; never the clip just kept, which an alert is about to point at).
Retention runs with a put at most once every ``prune_every`` seconds (a minute): it ranks the
whole table, too much for every insert. A clip over ``MAX_CLIP_BYTES`` is not shared (it
stays on the instance that kept it).

A clip is served by parts: ``head`` reads its name, digest and size (no body), ``read`` one
byte range of it (``substring`` in the database), so a Range request or a HEAD never brings
the whole clip over.

``fleet_secrets`` holds the key that signs evidence URLs, drawn once for the whole fleet, so
a URL handed out by one instance plays on any other.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from streamguard.state.postgres.database import Connection, PgDatabase

__all__ = [
    "MAX_CLIP_BYTES",
    "PRUNE_EVERY_SECONDS",
    "ClipHead",
    "PgEvidenceClips",
    "SharedClip",
    "evidence_url_key",
]

MAX_CLIP_BYTES = 16_000_000
"""The largest clip shared (a 60-s WAV at 16 kHz mono is under 2 MB)."""

PRUNE_EVERY_SECONDS = 60.0
"""Retention runs with a put at most this often."""


@dataclass(frozen=True, slots=True)
class SharedClip:
    """A clip as the database keeps it."""

    segment_id: str
    file_name: str
    """``{segment id}{suffix}``: the suffix says the media type."""
    sha256: str
    body: bytes


@dataclass(frozen=True, slots=True)
class ClipHead:
    """A kept clip without its body."""

    segment_id: str
    file_name: str
    sha256: str
    size: int


class PgEvidenceClips:
    """Keep, read and prune the shared clips."""

    def __init__(
        self,
        db: PgDatabase,
        *,
        keep_seconds: float,
        max_bytes: int,
        prune_every: float = PRUNE_EVERY_SECONDS,
    ) -> None:
        self._db = db
        self.keep = timedelta(seconds=keep_seconds)
        self.max_bytes = max_bytes
        self.prune_every = prune_every
        self._pruned_at: float | None = None  # monotonic

    async def put(self, stream_id: str, clip: SharedClip) -> int:
        """Keep ``clip`` (again: the latest wins) and, when ``prune_every`` has passed since
        it last ran here, apply retention in the same transaction; return how many clips
        retention deleted."""
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
            return await self._prune(conn, clip.segment_id) if due else 0

        now = time.monotonic()
        due = self._pruned_at is None or now - self._pruned_at >= self.prune_every
        deleted = await self._db.run(insert)
        if due:
            self._pruned_at = now
        return deleted

    async def delete(self, segment_id: str) -> None:
        """Forget the clip of ``segment_id`` (its segment's writes were refused as stale)."""
        await self._db.run(
            lambda conn: conn.execute(
                "DELETE FROM evidence_clips WHERE segment_id = %s", (segment_id,)
            )
        )

    async def head(self, segment_id: str) -> ClipHead | None:
        """The clip of ``segment_id`` without its body, or None (never kept, or deleted by
        retention)."""

        async def select(conn: Connection) -> ClipHead | None:
            cursor = await conn.execute(
                "SELECT segment_id, file_name, sha256, size FROM evidence_clips"
                " WHERE segment_id = %s",
                (segment_id,),
            )
            row = await cursor.fetchone()
            return None if row is None else ClipHead(row[0], row[1], row[2], row[3])

        return await self._db.run(select)

    async def read(self, head: ClipHead, start: int, length: int) -> bytes | None:
        """``length`` bytes of the clip from byte ``start`` (fewer at its end), read in the
        database; None when the clip is gone or was kept again since ``head`` was read."""

        async def select(conn: Connection) -> bytes | None:
            cursor = await conn.execute(
                "SELECT substring(body from %s for %s) FROM evidence_clips"
                " WHERE segment_id = %s AND sha256 = %s",
                (start + 1, length, head.segment_id, head.sha256),
            )
            row = await cursor.fetchone()
            return None if row is None else bytes(row[0])

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
