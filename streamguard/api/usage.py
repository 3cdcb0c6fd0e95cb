"""``GET /v1/usage``: minutes ingested, moderated and skipped per UTC day and label.

``from`` and ``to`` are UTC days (``YYYY-MM-DD``), both included; either may be left out.
``format=csv`` answers the per-day-and-label rows as a CSV file (the console's export), one
line per row under a header naming ``USAGE_COLUMNS``; ``format=json`` (the default) answers a
``UsageReport``: those rows, and their totals per day and per label. Counted from the
``results`` table (``state.usage``): every segment heard, on the day it started.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from streamguard.api.replies import BadQuery, choice, json_reply, problem
from streamguard.state.results import ResultStore
from streamguard.state.usage import USAGE_COLUMNS, UsageRange

__all__ = ["UsageDay", "UsageLabel", "UsageReport", "UsageRoutes", "UsageRow"]

FORMATS = ("json", "csv")


class UsageFigures(BaseModel):
    """What was heard in one day, label, or both."""

    segments: int = Field(ge=0, description="Segments heard.")
    minutes_ingested: float = Field(ge=0, description="Minutes of audio heard.")
    minutes_moderated: float = Field(ge=0, description="Minutes an engine judged.")
    minutes_skipped_silent: float = Field(
        ge=0, description="Minutes the speech gate found without speech (not sent, not billed)."
    )
    minutes_unjudged: float = Field(
        ge=0, description="Minutes not judged: the engine was overloaded or failed."
    )
    frames: int = Field(default=0, ge=0, description="Video frames taken from the streams.")
    frames_judged: int = Field(default=0, ge=0, description="Video frames an engine judged.")


class UsageRow(UsageFigures):
    """One UTC day and label."""

    day: str = Field(description="UTC day, YYYY-MM-DD.")
    label: str = Field(description="The verdict's label (Normal when nothing was found).")


class UsageDay(UsageFigures):
    """One UTC day, every label."""

    day: str = Field(description="UTC day, YYYY-MM-DD.")


class UsageLabel(UsageFigures):
    """One label over the whole range."""

    label: str


class UsageReport(BaseModel):
    """The answer of ``GET /v1/usage?format=json``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from", description="First UTC day asked for (inclusive).")
    to: str | None = Field(description="Last UTC day asked for (inclusive).")
    usage: list[UsageRow] = Field(description="Per day and label, oldest day first.")
    days: list[UsageDay] = Field(description="Totals per day, oldest first.")
    labels: list[UsageLabel] = Field(description="Totals per label over the range.")


class UsageRoutes:
    """The usage handler, on the daemon's results."""

    def __init__(self, results: ResultStore) -> None:
        self._results = results

    def routes(self) -> list[web.RouteDef]:
        """The routes to register."""
        return [web.get("/v1/usage", self.usage)]

    async def usage(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            fmt = choice(q.get("format") or "json", FORMATS, "format")
            first, last = _day(q.get("from"), "from"), _day(q.get("to"), "to")
            if first is not None and last is not None and last < first:
                raise BadQuery("to must not be before from")
        except BadQuery as exc:
            return problem(400, "bad_query", str(exc))
        span = UsageRange(
            since=None if first is None else datetime.combine(first, time(), UTC),
            until=None if last is None or last == date.max else _after(last),
        )
        rows = [UsageRow.model_validate(row) for row in await self._results.usage(span)]
        names = (str(first) if first else None, str(last) if last else None)
        if fmt == "csv":
            return _csv(rows, *names)
        report = UsageReport(
            from_=names[0],
            to=names[1],
            usage=rows,
            days=[UsageDay(day=day, **_sum(group)) for day, group in _by(rows, "day")],
            labels=[UsageLabel(label=lbl, **_sum(group)) for lbl, group in _by(rows, "label")],
        )
        return json_reply(report.model_dump(mode="json", by_alias=True))


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadQuery(f"{name} must be a UTC day as YYYY-MM-DD, got {value!r}") from exc


def _after(day: date) -> datetime:
    """The start of the UTC day after ``day``."""
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def _by(rows: list[UsageRow], key: str) -> Iterable[tuple[str, list[UsageRow]]]:
    groups: dict[str, list[UsageRow]] = {}
    for row in rows:
        groups.setdefault(getattr(row, key), []).append(row)
    return sorted(groups.items())


def _sum(rows: list[UsageRow]) -> dict[str, Any]:
    names = UsageFigures.model_fields
    totals = {name: sum(getattr(row, name) for row in rows) for name in names}
    return {
        name: value if name in ("segments", "frames", "frames_judged") else round(value, 3)
        for name, value in totals.items()
    }


def _csv(rows: list[UsageRow], first: str | None, last: str | None) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(USAGE_COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in USAGE_COLUMNS])
    name = f"streamguard-usage-{first or 'start'}-to-{last or 'now'}.csv"
    return web.Response(
        body=out.getvalue().encode("utf-8"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _cell(value: object) -> object:
    """A spreadsheet must not run a label as a formula (``=``, ``+``, ``-``, ``@``)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
