"""The control API: attach and detach rooms, read their status and results, give feedback.

Every route but ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json`` and the console's
pages needs ``Authorization: Bearer <token>`` (the viewer token: reads only; see
``api.auth``). Bodies are validated by the same models as the config
file, so a stream attached here obeys exactly the rules a configured one does. Every JSON
answer passes ``core.redact``: a password in a stream URL or an error text never leaves.

While the state disk refuses writes (``storage`` says so, or a write raises ``StateError``)
requests that must write — attaching or changing a stream keeps it in the database — answer
``503 storage_unavailable``: the request was fine, the daemon cannot keep it now.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from streamguard.api.auth import Access, EvidenceUrls, auth_middleware
from streamguard.api.console import ConsolePages, ConsoleSetup
from streamguard.api.evidence import EvidenceRoutes
from streamguard.api.incidents import IncidentRoutes
from streamguard.api.openapi import OPENAPI
from streamguard.api.replies import choice, query_int, query_time
from streamguard.api.try_it import TryIt
from streamguard.api.usage import UsageRoutes
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import ProtocolNotAllowed, StreamGuardError
from streamguard.core.redact import redact_json
from streamguard.ingest.addresses import POLICY_REFUSAL, AddressNotAllowed
from streamguard.state.db import StateError
from streamguard.state.feedback import FeedbackError, FeedbackStore
from streamguard.state.results import RISK_ORDER, ResultQuery, ResultStore
from streamguard.streams.placement import LocalPlacements, Placements
from streamguard.streams.refusals import ShuttingDown, StreamConflict, UnknownProfile
from streamguard.streams.report import StreamReport

__all__ = ["StreamConflict", "StreamControl", "build_api"]


class StreamControl(Protocol):
    """What the API needs from the daemon's streams."""

    def reports(self) -> list[StreamReport]: ...

    def report(self, stream_id: str) -> StreamReport | None: ...

    def config_of(self, stream_id: str) -> StreamConfig | None: ...

    async def attach(self, stream: StreamConfig) -> None: ...

    async def change(self, stream: StreamConfig) -> None: ...

    async def detach(self, stream_id: str) -> bool: ...


@runtime_checkable
class _Checks(Protocol):
    """Streams that can check a stream the way its owner will (``Streams.check``)."""

    def check(self, stream: StreamConfig, *, from_api: bool = True) -> None: ...


@runtime_checkable
class _Applies(Protocol):
    """Streams that apply a change kept in fleet mode's shared desired set to a stream held
    here, without keeping it again (``Streams.change_leased``)."""

    async def change_leased(self, stream: StreamConfig, *, from_api: bool) -> None: ...


Check = Callable[[], Awaitable[tuple[bool, str]]]


def build_api(
    *,
    streams: StreamControl,
    results: ResultStore,
    feedback: FeedbackStore,
    registry: CollectorRegistry,
    readiness: dict[str, Check],
    token: str | None,
    console: ConsoleSetup | None = None,
    text: web.RouteDef | None = None,
    try_it: TryIt | None = None,
    image: web.RouteDef | None = None,
    storage: Check | None = None,
    placements: Placements | None = None,
) -> web.Application:
    """The aiohttp application; the daemon runs it with an ``AppRunner``.

    With ``console`` it also serves the incident and evidence routes, the console, and
    accepts the viewer token; with ``text`` it serves ``POST /v1/moderate/text``, with
    ``try_it`` ``POST /v1/moderate/file`` and ``/v1/moderate/url``.
    ``storage`` says whether the state disk takes writes (attaching a stream is refused
    while it does not). ``placements`` says where each stream runs (fleet mode: the fleet's
    streams with their owners; by default every stream runs here)."""
    access = (
        Access(token)
        if console is None
        else Access(token, console.viewer_token, _evidence_urls(console))
    )
    app = web.Application(middlewares=[_errors, auth_middleware(access)], client_max_size=64 * 1024)
    api = _Handlers(streams, results, feedback, registry, readiness, storage)
    api.placements = placements or api.placements
    app.add_routes(
        [
            web.get("/healthz", api.healthz),
            web.get("/readyz", api.readyz),
            web.get("/metrics", api.metrics),
            web.get("/openapi.json", api.openapi),
            web.get("/v1/streams", api.list_streams),
            web.post("/v1/streams", api.create_stream),
            web.get("/v1/streams/{id}", api.read_stream),
            web.patch("/v1/streams/{id}", api.change_stream),
            web.delete("/v1/streams/{id}", api.delete_stream),
            web.get("/v1/results", api.query_results),
            web.post("/v1/feedback", api.give_feedback),
            web.get("/v1/feedback", api.feedback_counts),
        ]
    )
    app.add_routes(UsageRoutes(results).routes())
    if console is not None:
        app.add_routes(_console_routes(console, results, feedback, streams, access, api.placements))
    # POST /v1/moderate/text, /file, /url and /image (api.text, api.try_it, api.image)
    app.add_routes([route for route in (text, image) if route is not None])
    if try_it is not None:
        app.add_routes(try_it.routes())
    return app


def _console_routes(
    console: ConsoleSetup,
    results: ResultStore,
    feedback: FeedbackStore,
    streams: StreamControl,
    access: Access,
    placements: Placements,
) -> list[web.RouteDef]:
    """The incident and evidence routes and the console's pages."""
    history = console.incidents
    incidents = IncidentRoutes(history, results, feedback, streams, access.evidence, placements)
    return [
        *incidents.routes(),
        *EvidenceRoutes(history, console.evidence_dir, console.shared_clips).routes(),
        *ConsolePages().routes(),
    ]


def _evidence_urls(console: ConsoleSetup) -> EvidenceUrls:
    """Signed evidence URLs: under the fleet's key in fleet mode (they play on any
    instance), else under this process's own."""
    if console.evidence_url_key is None:
        return EvidenceUrls(ttl=console.evidence_url_ttl)
    return EvidenceUrls(ttl=console.evidence_url_ttl, key=console.evidence_url_key)


def _json(body: Any, status: int = 200) -> web.Response:
    """A JSON answer; every string in it redacted (stream URLs, errors quoting them)."""
    return web.json_response(redact_json(body), status=status)


def _problem(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return _json(body, status=status)


def _refusal(exc: StreamGuardError) -> web.Response:
    """The answer to a stream the daemon will not run, by why."""
    if isinstance(exc, StateError):
        return _unwritable(str(exc))
    if isinstance(exc, StreamConflict):
        return _problem(409, getattr(exc, "code", "stream_exists"), str(exc))
    if isinstance(exc, ProtocolNotAllowed):
        return _problem(422, "protocol_not_allowed", str(exc))
    if isinstance(exc, AddressNotAllowed):  # a host that is a denied IP address
        return _problem(422, "address_not_allowed", POLICY_REFUSAL)
    if isinstance(exc, ShuttingDown):
        return _problem(503, "shutting_down", str(exc))
    if isinstance(exc, UnknownProfile):
        return _problem(422, "unknown_profile", str(exc))
    return _problem(422, "invalid_source", str(exc))


ORDERS = ("oldest", "newest")


def _cursor(value: str | None) -> str | None:
    """A result's ``cursor`` (``started_at|segment_id``), as ``next_cursor`` gave it. Its
    time's UTC offset has a ``+`` that a query string not percent-encoded hands us as a
    space (a cursor has no space of its own): read as the ``+`` it was. One whose time does
    not parse is refused."""
    if value is None:
        return None
    started_at, bar, segment_id = value.partition("|")
    started_at = started_at.replace(" ", "+")
    try:
        datetime.fromisoformat(started_at)  # else each backend orders the garbage its way
    except ValueError:
        bar = ""
    if not bar:
        raise ValueError("cursor must be a next_cursor from an earlier answer")
    return f"{started_at}|{segment_id}"


def _unwritable(why: str) -> web.Response:
    return _problem(503, "storage_unavailable", f"the state disk refuses writes: {why}")


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    for name, value in request.query.items():
        if "\x00" in value:  # no store takes it (PostgreSQL refuses NUL in text)
            return _problem(400, "invalid_request", f"query parameter {name!r} holds a NUL byte")
    try:
        return await handler(request)
    except _BadRequest as exc:
        return _problem(400, exc.code, exc.message, exc.details)
    except StreamConflict as exc:  # e.g. a DELETE of a stream the config file defines
        return _refusal(exc)
    except StateError as exc:  # e.g. a DELETE or feedback while the disk is full
        return _unwritable(str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _problem(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested too deep
        raise _BadRequest("malformed_json", f"body is not usable JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("malformed_json", "body must be a JSON object")
    return body


class _BadRequest(Exception):
    """A request the API refuses with 400; the middleware turns it into the error body."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def _validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "(body)",
            "reason": "unknown field" if e["type"] == "extra_forbidden" else e["msg"],
        }
        for e in exc.errors()
    ]


class _Handlers:
    def __init__(
        self,
        streams: StreamControl,
        results: ResultStore,
        feedback: FeedbackStore,
        registry: CollectorRegistry,
        readiness: dict[str, Check],
        storage: Check | None,
    ) -> None:
        self.storage = storage
        self.streams = streams
        self.results = results
        self.feedback = feedback
        self.registry = registry
        self.readiness = readiness
        self.placements: Placements = LocalPlacements(None)

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = {name: await check() for name, check in self.readiness.items()}
        ready = all(ok for ok, _ in checks.values())
        body = {
            "ready": ready,
            "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
        }
        return _json(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(OPENAPI)

    async def list_streams(self, request: web.Request) -> web.Response:
        placed, complete = await self.placements.all(self.streams.reports())
        body = {
            "instance": self.placements.instance_id,
            "complete": complete,
            "streams": [stream.to_json() for stream in placed],
        }
        return _json(body)

    async def create_stream(self, request: web.Request) -> web.Response:
        stream = self._stream_from(await _json_body(request))
        refused = await self._unwritable()
        if refused is not None:
            return refused
        try:
            await self.streams.attach(stream)
        except StreamGuardError as exc:
            return _refusal(exc)
        return _json(await self._report(stream.id), status=201)

    async def read_stream(self, request: web.Request) -> web.Response:
        stream_id = request.match_info["id"]
        placed = await self.placements.one(stream_id, self.streams.report(stream_id))
        if placed is None:
            return _problem(404, "no_such_stream", f"no stream {stream_id!r}")
        return _json(placed.to_json())

    async def change_stream(self, request: web.Request) -> web.Response:
        """A change merged over the stream's config. In fleet mode that is the config the
        shared desired set keeps (with any change kept through another instance that its
        owner has not applied yet), and the change is kept only while it is still the one
        read, wherever the stream runs (``_change_kept``); on one machine, the config it
        runs with."""
        stream_id = request.match_info["id"]
        current = self.streams.config_of(stream_id)
        kept = await self.placements.one(stream_id, None)
        if kept is not None and kept.version is not None and kept.config is not None:
            base: dict[str, Any] | None = kept.config
        else:
            kept = None  # one machine (or the fleet's database away): as it runs here
            base = current.model_dump() if current is not None else None
        if base is None:
            return _problem(404, "no_such_stream", f"no stream {stream_id!r}")
        body = await _json_body(request)
        if body.get("id", stream_id) != stream_id:
            return _problem(400, "id_mismatch", "a stream's id cannot be changed")
        stream = self._stream_from({**base, **body})
        refused = await self._unwritable()
        if refused is not None:
            return refused
        try:
            if kept is not None:
                return await self._change_kept(stream, kept.version)
            await self.streams.change(stream)
        except StreamGuardError as exc:
            return _refusal(exc)
        return _json(await self._report(stream_id))

    async def _change_kept(self, stream: StreamConfig, seen: datetime | None) -> web.Response:
        """Fleet mode: checked as its owner will check it, kept in the shared desired set
        while its config is still the one read (``seen``; else ``409 conflict``: retry). A
        stream that runs here is changed here at once (``200`` with its report); one that
        does not is changed by its owner at its next lease turn (``202`` with what will
        happen)."""
        if isinstance(self.streams, _Checks):
            self.streams.check(stream)  # a profile or protocol its owner would refuse
        pending = await self.placements.change(stream, seen)
        if pending is None:
            return _problem(404, "no_such_stream", f"no stream {stream.id!r}")
        if self.streams.config_of(stream.id) is None or not isinstance(self.streams, _Applies):
            return _json(pending.to_json(), status=202)
        await self.streams.change_leased(stream, from_api=True)
        return _json(await self._report(stream.id))

    async def _unwritable(self) -> web.Response | None:
        """503 while the state disk refuses writes: a stream attached now could not be kept
        (and what it hears would only add to the writes waiting in memory)."""
        if self.storage is None:
            return None
        ok, why = await self.storage()
        return None if ok else _unwritable(why)

    async def _report(self, stream_id: str) -> dict[str, Any] | None:
        placed = await self.placements.one(stream_id, self.streams.report(stream_id))
        return None if placed is None else placed.to_json()

    async def delete_stream(self, request: web.Request) -> web.Response:
        if not await self.streams.detach(request.match_info["id"]):
            return _problem(404, "no_such_stream", f"no stream {request.match_info['id']!r}")
        return web.Response(status=204)

    async def query_results(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            query = ResultQuery(
                stream_id=q.get("stream"),
                room_id=q.get("room"),
                segment_id=q.get("data_id"),
                label=q.get("label"),
                min_risk=choice(q.get("min_risk"), RISK_ORDER, "min_risk"),
                since=query_time(q.get("since"), "since"),
                until=query_time(q.get("until"), "until"),
                text=q.get("q") or None,
                limit=query_int(q.get("limit", "100"), "limit", 1, 1000),
                newest_first=choice(q.get("order", "oldest"), ORDERS, "order") == "newest",
                after=_cursor(q.get("cursor")),
            )
        except ValueError as exc:
            return _problem(400, "bad_query", str(exc))
        found = await self.results.query(query)
        more = len(found) == query.limit
        return _json({"results": found, "next_cursor": found[-1]["cursor"] if more else None})

    async def give_feedback(self, request: web.Request) -> web.Response:
        try:
            entry = await self.feedback.record(await _json_body(request))
        except FeedbackError as exc:
            return _problem(400, "bad_feedback", str(exc))
        return _json(entry, status=201)

    async def feedback_counts(self, request: web.Request) -> web.Response:
        entries = await self.feedback.entries()
        counts = {
            "counts": await self.feedback.counts(),
            "frames": await self.feedback.counts(frames=True),  # video frames' results
            "audio": await self.feedback.counts(frames=False),
        }
        return _json({**counts, "entries": entries})

    def _stream_from(self, body: dict[str, Any]) -> StreamConfig:
        try:
            return StreamConfig.model_validate(body)
        except ValidationError as exc:
            raise _BadRequest(
                "invalid_stream", "the stream is not valid", _validation_details(exc)
            ) from exc
