""" "Try it" (Alibaba's online test): judge an uploaded file or a URL, see each segment's verdict.

``POST /v1/moderate/file``: ``multipart/form-data`` with ``file`` (the audio) and optionally
``profile`` and ``segment_seconds`` (``TryOptions``). ``POST /v1/moderate/url``: JSON
``TryUrl``; the URL passes the very checks ``POST /v1/streams`` does (the daemon's
``Streams.check``: protocol allow-list, profile and whatever else it refuses). Both answer
a ``TryReport`` (``api.try_run``): the audio read once, judged by the configured engine off
the event loop, decided under the profile, and neither stored, alerted nor counted in usage.

Errors: ``400 bad_upload`` / ``invalid_request`` (malformed form or body, naming the field),
``400 empty_file``, ``413 too_large`` (``TryLimits.max_upload_bytes``), ``415`` (not a
multipart form), ``422 not_audio`` (nothing decodable), the stream refusals of ``POST
/v1/streams`` for a URL, and ``429 busy`` while ``TryLimits.concurrent`` tries run (with
``Retry-After``), ``501 not_available`` with the AMS engine (for now: a verdict that
settles after the try would take the late-verdict path, as a live room's). The viewer token
cannot try (it only reads: ``api.auth``); trying spends
the engine's CPU.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamguard.api.replies import json_reply
from streamguard.api.try_run import TryEngine, TryLimits, TryReport, try_source
from streamguard.config import Config
from streamguard.config.ingest import IngestConfig, SegmentSeconds
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import ProtocolNotAllowed, SourceError, StreamGuardError
from streamguard.engines.base import Engine
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.profiles import Profiles
from streamguard.streams.refusals import ShuttingDown, UnknownProfile

__all__ = ["TryIt", "TryOptions", "TryUrl"]

_CHUNK = 64 * 1024
_FIELD_BYTES = 1024
_NAME = re.compile(r"[^\w .()+@-]")


class TryOptions(BaseModel):
    """How to judge the audio tried."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field("default", description="Policy profile that decides the risk.")
    segment_seconds: SegmentSeconds | None = Field(
        None, description="Segment length; defaults to ingest.segment_seconds."
    )


class TryUrl(TryOptions):
    """``POST /v1/moderate/url``: a recording to fetch and judge once."""

    url: str = Field(min_length=1, max_length=4096, description="As for POST /v1/streams.")


_Options = TypeVar("_Options", bound=TryOptions)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.details = status, code, details

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.details is not None:
            error["details"] = self.details
        headers = {"Retry-After": "10"} if self.status == 429 else None
        reply = json_reply({"error": error}, status=self.status)
        reply.headers.update(headers or {})
        return reply


class TryIt:
    """The try-it routes; ``check`` is the daemon's refusal of a stream (``Streams.check``)."""

    def __init__(
        self,
        judge: TryEngine,
        *,
        profiles: Mapping[str, object],
        check: Callable[[StreamConfig], None],
        ingest: IngestConfig,
        limits: TryLimits | None = None,
        unavailable: str | None = None,
    ) -> None:
        self._unavailable = unavailable
        self._judge = judge
        self._profiles = profiles
        self._check = check
        self._limits = limits or TryLimits()
        # A URL is read as an API-attached stream would be; an upload is a local file.
        self._url_ingest = ingest
        self._file_ingest = ingest.model_copy(
            update={"allowed_protocols": [], "allow_local_files": True}
        )
        self._running = 0

    @classmethod
    def of(
        cls,
        config: Config,
        engine: Engine,
        outcomes: Outcomes,
        profiles: Profiles,
        check: Callable[[StreamConfig], None],
    ) -> TryIt:
        """The try-it routes of the daemon ``config`` describes."""
        ingest = config.ingest
        judge = TryEngine(
            engine, outcomes.decide, profiles.biz_type, ingest.encoding, ingest.segment_seconds
        )
        api_files = ingest.allow_local_files and config.api.allow_local_files
        url_ingest = ingest.model_copy(update={"allow_local_files": api_files})
        # An AMS task outlives a try cut short (budget, restart) and its verdict would come
        # back through the late-verdict path as a live room's: recorded, maybe alerted.
        unavailable = (
            None
            if config.engine.type == "local"
            else "try it needs the local engine: an AMS verdict that settles after the try "
            "would be handled as a live room's"
        )
        return cls(
            judge, profiles=profiles, check=check, ingest=url_ingest, unavailable=unavailable
        )

    def routes(self) -> list[web.RouteDef]:
        """The routes to register."""
        return [
            web.post("/v1/moderate/file", self.moderate_file),
            web.post("/v1/moderate/url", self.moderate_url),
        ]

    async def moderate_file(self, request: web.Request) -> web.Response:
        try:
            with self._slot():
                return await self._file(request)
        except _Refused as refused:
            return refused.response()

    async def moderate_url(self, request: web.Request) -> web.Response:
        try:
            with self._slot():
                return await self._url(request)
        except _Refused as refused:
            return refused.response()

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if self._unavailable is not None:
            raise _Refused(501, "not_available", self._unavailable)
        if self._running >= self._limits.concurrent:
            raise _Refused(429, "busy", "another try is running; try again shortly")
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1

    async def _file(self, request: web.Request) -> web.Response:
        limit = self._limits.max_upload_bytes
        if request.content_length is not None and request.content_length > limit + _CHUNK:
            raise _too_large(limit)
        if request.content_type != "multipart/form-data":
            raise _Refused(415, "unsupported_media_type", "send multipart/form-data with 'file'")
        name, data, fields = await _read_form(request, limit)
        options = _options(TryOptions, fields)
        stream = self._stream("upload", options)
        async with _work_dir() as work:
            path = work / "upload"
            await asyncio.to_thread(path.write_bytes, data)
            del data
            report = await self._run(path, stream, self._file_ingest, work, name)
        return json_reply(report.model_dump(mode="json"))

    async def _url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            raise _Refused(400, "invalid_request", "body is not JSON") from exc
        options = _options(TryUrl, body if isinstance(body, dict) else {"(body)": body})
        stream = self._stream(options.url, options)
        try:
            self._check(stream)
        except StreamGuardError as exc:
            raise _refusal(exc) from exc
        async with _work_dir() as work:
            report = await self._run(options.url, stream, self._url_ingest, work, None)
        return json_reply(report.model_dump(mode="json"))

    def _stream(self, url: str, options: TryOptions) -> StreamConfig:
        if options.profile not in self._profiles:
            known = ", ".join(sorted(self._profiles))
            raise _Refused(422, "unknown_profile", f"profile {options.profile!r}: not {known}")
        stream_id = f"try-{uuid.uuid4().hex[:12]}"
        return StreamConfig(
            id=stream_id,
            url=url,
            profile=options.profile,
            segment_seconds=options.segment_seconds,
            live=False,
        )

    async def _run(
        self,
        where: str | Path,
        stream: StreamConfig,
        ingest: IngestConfig,
        work: Path,
        name: str | None,
    ) -> TryReport:
        try:
            report = await try_source(
                where, stream, ingest=ingest, judge=self._judge, limits=self._limits, work_dir=work
            )
        except SourceError as exc:
            message = _shown(str(exc), where, name)
            raise _Refused(422, "not_audio", f"no audio could be read: {message}") from exc
        error = None if report.error is None else _shown(report.error, where, name)
        return report.model_copy(update={"source": name or stream.url, "error": error})


@asynccontextmanager
async def _work_dir() -> AsyncIterator[Path]:
    """A private temporary directory for the upload and the clips, removed after (in a
    thread: both are disk work)."""
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="streamguard-try-"))
    try:
        yield work
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _read_form(request: web.Request, limit: int) -> tuple[str, bytes, dict[str, str]]:
    """The uploaded file's name and bytes, and the other fields as text."""
    try:
        reader = await request.multipart()
        fields: dict[str, str] = {}
        upload: tuple[str, bytes] | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _Refused(400, "bad_upload", "nested multipart is not accepted")
            if part.name == "file":
                data = await _read_part(part, limit, lambda: _too_large(limit))
                upload = (_file_name(part.filename), data)
            elif part.name in TryOptions.model_fields:
                raw = await _read_part(part, _FIELD_BYTES, lambda: _long_field(part.name))
                fields[part.name] = raw.decode("utf-8", "replace")
            else:
                raise _Refused(400, "bad_upload", f"unknown form field {part.name!r}")
    except (ValueError, AssertionError) as exc:  # aiohttp: a malformed multipart body
        raise _Refused(400, "bad_upload", f"the form cannot be read: {exc}") from exc
    if upload is None:
        raise _Refused(400, "bad_upload", "the form has no 'file' field")
    if not upload[1]:
        raise _Refused(400, "empty_file", f"{upload[0]} is empty")
    return upload[0], upload[1], fields


async def _read_part(part: BodyPartReader, limit: int, too_big: Callable[[], _Refused]) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise too_big()
    return bytes(data)


def _shown(message: str, where: str | Path, name: str | None) -> str:
    """An upload is named by its file name, never by the server's temporary path."""
    return message if name is None else message.replace(str(where), name)


def _options(model: type[_Options], fields: dict[str, Any]) -> _Options:
    values = {
        k: int(v) if k == "segment_seconds" and v.isascii() and v.isdigit() else v
        for k, v in fields.items()
    }
    values = {k: v for k, v in values.items() if v != ""}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "reason": e["msg"]}
            for e in exc.errors()
        ]
        raise _Refused(400, "invalid_request", "the request is not valid", details) from exc


def _file_name(name: str | None) -> str:
    """The name to show: aiohttp's client percent-encodes it, browsers send it raw."""
    return _NAME.sub("_", unquote(name or ""))[:120] or "upload"


def _too_large(limit: int) -> _Refused:
    return _Refused(413, "too_large", f"the file is larger than {limit} bytes")


def _long_field(name: str | None) -> _Refused:
    return _Refused(400, "bad_upload", f"form field {name!r} is longer than {_FIELD_BYTES} bytes")


def _refusal(exc: StreamGuardError) -> _Refused:
    """A URL ``POST /v1/streams`` would refuse, refused the same way."""
    if isinstance(exc, ShuttingDown):
        return _Refused(503, "shutting_down", str(exc))
    if isinstance(exc, ProtocolNotAllowed):
        return _Refused(422, "protocol_not_allowed", str(exc))
    if isinstance(exc, UnknownProfile):
        return _Refused(422, "unknown_profile", str(exc))
    return _Refused(422, getattr(exc, "code", "invalid_source"), str(exc))
