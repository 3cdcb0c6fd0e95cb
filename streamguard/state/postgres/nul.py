"""PostgreSQL holds no NUL character: a ``text`` value cannot contain one, and ``jsonb``
refuses the ``\\u0000`` escape ("unsupported Unicode escape sequence"). A transcript or an
engine's reason may carry one (SQLite keeps it). ``nul_free`` configures a connection so
every ``str`` and every ``Jsonb`` value it sends has its NUL characters removed: one place,
whatever store writes (``PgDatabase`` applies it to each connection of its pool)."""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection
from psycopg.abc import Buffer
from psycopg.types.json import set_json_dumps
from psycopg.types.string import StrDumperUnknown

__all__ = ["NUL", "nul_free", "scrub"]

NUL = "\x00"


def scrub(value: Any) -> Any:
    """``value`` with NUL removed from every string in it (dict keys, lists, nested)."""
    if isinstance(value, str):
        return value.replace(NUL, "")
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(scrub(value))


class NulFreeStrDumper(StrDumperUnknown):
    """A ``str`` parameter (of any text column) without its NUL characters."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace(NUL, ""))


async def nul_free(conn: AsyncConnection[Any]) -> None:
    """Make ``conn`` send strings and JSON without NUL characters."""
    conn.adapters.register_dumper(str, NulFreeStrDumper)
    set_json_dumps(_dumps, conn)
