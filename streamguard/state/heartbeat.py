"""The ``daemon_heartbeat`` table: one row rewritten by the readiness check, so ``/readyz``
proves the database file takes writes (a full or read-only disk fails here)."""

from __future__ import annotations

from datetime import UTC, datetime

from streamguard.core.errors import StreamGuardError
from streamguard.state.db import Database

__all__ = ["Heartbeat"]


class Heartbeat:
    """Writes the heartbeat row; ``check`` is a readiness check."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def check(self) -> tuple[bool, str]:
        """(True, "writable") after a real write, else (False, why)."""
        now = datetime.now(UTC).isoformat()
        try:
            await self._db.run(
                lambda conn: conn.execute(
                    "INSERT OR REPLACE INTO daemon_heartbeat (id, at) VALUES (1, ?)", (now,)
                )
            )
        except StreamGuardError as exc:
            return False, str(exc)
        return True, "writable"
