"""Incidents and rooms as the console reads them.

``GET /v1/incidents`` (newest first; ``room``, ``label``, ``risk``, ``min_risk``, ``state``,
``since``, ``until``, ``limit``), ``GET /v1/incidents/{id}`` (its segments with verdicts and
transcripts, signed evidence URLs, its alerts and the feedback given on it), ``GET
/v1/rooms`` (every room of the fleet: its placement, its live state where it runs here, its
last result and open incidents from the shared stores) and ``GET /v1/whoami`` (the
caller's role, for the console to show or hide what a viewer may not do).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Protocol

from aiohttp import web

from streamguard.api.auth import EvidenceUrls, role_of
from streamguard.api.evidence import MEDIA_TYPES
from streamguard.api.replies import BadQuery, choice, json_reply, problem, query_int, query_time
from streamguard.state.feedback import FeedbackStore
from streamguard.state.incidents import RISK_RANK, IncidentQuery, IncidentStore
from streamguard.state.results import ResultStore
from streamguard.streams.placement import LocalPlacements, Placements
from streamguard.streams.report import StreamReport

__all__ = ["IncidentRoutes"]

STATES = {"open": True, "ended": False}


class _Reports(Protocol):
    def reports(self) -> list[StreamReport]: ...


class IncidentRoutes:
    """Handlers of the incident, room and whoami routes."""

    def __init__(
        self,
        history: IncidentStore,
        results: ResultStore,
        feedback: FeedbackStore,
        streams: _Reports,
        urls: EvidenceUrls,
        placements: Placements | None = None,
    ) -> None:
        self._history = history
        self._results = results
        self._feedback = feedback
        self._streams = streams
        self._urls = urls
        self._placements: Placements = placements or LocalPlacements(None)

    def routes(self) -> list[web.RouteDef]:
        """The routes to register."""
        return [
            web.get("/v1/incidents", self.list_incidents),
            web.get("/v1/incidents/{id}", self.read_incident),
            web.get("/v1/rooms", self.rooms),
            web.get("/v1/whoami", self.whoami),
        ]

    async def list_incidents(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            state = choice(q.get("state"), STATES, "state")
            query = IncidentQuery(
                room_id=q.get("room") or None,
                label=q.get("label") or None,
                risk=choice(q.get("risk") or None, RISK_RANK, "risk"),
                min_risk=choice(q.get("min_risk") or None, RISK_RANK, "min_risk"),
                since=query_time(q.get("since") or None, "since"),
                until=query_time(q.get("until") or None, "until"),
                open_only=None if state is None else STATES[state],
                limit=query_int(q.get("limit", "100"), "limit", 1, 1000),
            )
        except BadQuery as exc:
            return problem(400, "bad_query", str(exc))
        return json_reply({"incidents": await self._history.query(query)})

    async def read_incident(self, request: web.Request) -> web.Response:
        incident_id = request.match_info["id"]
        found = await self._history.get(incident_id)
        if found is None:
            return problem(404, "no_such_incident", f"no incident {incident_id!r}")
        for entry in found["segments"]:
            if entry["evidence"] is not None:
                entry["evidence"]["url"] = self._urls.url(entry["segment"]["id"])
                # What the console shows it in: a frame's JPEG is an image, a clip audio.
                suffix = PurePath(entry["evidence"]["clip_path"]).suffix
                entry["evidence"]["media_type"] = MEDIA_TYPES.get(suffix, "audio/mpeg")
        found["feedback"] = await self._feedback.entries(target_id=incident_id)
        return json_reply(found)

    async def rooms(self, request: web.Request) -> web.Response:
        """Every room: in fleet mode the shared desired set with each stream's placement
        (runtime fields are live only where it runs ``here``; null elsewhere, as in
        ``/v1/streams``), with the last result and open incidents from the shared stores."""
        placed, complete = await self._placements.all(self._streams.reports())
        latest = await self._results.latest([p.stream_id for p in placed])
        open_incidents = await self._history.query(IncidentQuery(open_only=True, limit=1000))
        rooms: list[dict[str, Any]] = []
        for stream in placed:
            room = stream.to_json()
            room["last_result"] = latest.get(stream.stream_id)
            room["open_incidents"] = sum(
                1 for i in open_incidents if i["stream_id"] == stream.stream_id
            )
            rooms.append(room)
        body = {"instance": self._placements.instance_id, "complete": complete, "rooms": rooms}
        return json_reply(body)

    async def whoami(self, request: web.Request) -> web.Response:
        return json_reply({"role": role_of(request).value})
