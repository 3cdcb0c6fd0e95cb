"""``GET /v1/evidence/{segment_id}``: an alerting segment's evidence clip (or a video
frame's JPEG), Range-capable.

Reached with the API or viewer token, or through a signed URL (``api.auth.EvidenceUrls``)
that the incident routes hand out so an ``<audio>`` element can play it. Only clips the
incident history names and that lie inside the evidence directory are served; one that
retention has deleted since is ``410 evidence_gone``.

In fleet mode a clip this instance did not keep is served from the shared database
(``state.postgres.evidence``), Range included (only the range asked for is read, by parts;
a HEAD reads no body), so the history's clips play through any instance; the URL signing
key is the fleet's, so a signed URL works on any instance too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from aiohttp import web

from streamguard.api.replies import problem
from streamguard.state.incidents import IncidentStore
from streamguard.state.postgres.evidence import ClipHead

__all__ = ["CHUNK_BYTES", "EvidenceRoutes", "SharedClipSource"]

CHUNK_BYTES = 1 << 20
"""A shared clip is read from the database and sent by parts of at most this many bytes."""

MEDIA_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}


class SharedClipSource(Protocol):
    """Fleet mode's shared clips (``state.postgres.evidence.PgEvidenceClips``)."""

    async def head(self, segment_id: str) -> ClipHead | None: ...

    async def read(self, head: ClipHead, start: int, length: int) -> bytes | None: ...


class EvidenceRoutes:
    """The evidence clip handler."""

    def __init__(
        self, history: IncidentStore, directory: Path, shared: SharedClipSource | None = None
    ) -> None:
        self._history = history
        self._directory = directory
        self._shared = shared

    def routes(self) -> list[web.RouteDef]:
        """The routes to register."""
        return [web.get("/v1/evidence/{segment_id}", self.clip)]

    async def clip(self, request: web.Request) -> web.StreamResponse:
        """The clip itself; aiohttp's ``FileResponse`` answers Range, If-Range and HEAD (a
        shared clip: Range and HEAD, read from the database by parts)."""
        segment_id = request.match_info["segment_id"]
        evidence = await self._history.evidence_of(segment_id)
        if evidence is None:
            return problem(404, "no_evidence", f"no evidence kept for segment {segment_id!r}")
        path = await asyncio.to_thread(self._resolve, Path(evidence["clip_path"]))
        if path is not None:
            return web.FileResponse(path, headers=_headers(path.suffix))
        head = None if self._shared is None else await self._shared.head(segment_id)
        if self._shared is not None and head is not None:
            return await _shared(request, self._shared, head)
        return _gone()

    def _resolve(self, clip: Path) -> Path | None:
        """The clip's real path if it exists inside the evidence directory."""
        real = clip.resolve()
        if not real.is_relative_to(self._directory.resolve()) or not real.is_file():
            return None
        return real


def _gone() -> web.Response:
    return problem(410, "evidence_gone", "the clip was deleted by evidence retention")


def _headers(suffix: str) -> dict[str, str]:
    return {
        "Content-Type": MEDIA_TYPES.get(suffix, "application/octet-stream"),
        "Cache-Control": "private, max-age=300",
        "X-Content-Type-Options": "nosniff",
    }


async def _shared(
    request: web.Request, shared: SharedClipSource, head: ClipHead
) -> web.StreamResponse:
    """A shared clip, whole or the one byte range asked for (``206``; ``416`` outside it),
    read from the database by parts of ``CHUNK_BYTES`` (a HEAD reads none)."""
    headers = {
        **_headers(Path(head.file_name).suffix),
        "Accept-Ranges": "bytes",
        "ETag": f'"{head.sha256}"',
    }
    size = head.size
    try:
        wanted = request.http_range
    except ValueError:
        wanted = slice(None, None)
    status, start, stop = 200, 0, size
    if wanted.start is not None or wanted.stop is not None:
        start, stop, _ = wanted.indices(size)
        if start >= stop:
            headers["Content-Range"] = f"bytes */{size}"
            return web.Response(status=416, headers=headers)
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        status = 206
    if request.method == "HEAD":
        return web.Response(status=status, headers={**headers, "Content-Length": f"{stop - start}"})
    part = await shared.read(head, start, min(CHUNK_BYTES, stop - start))
    if part is None:
        return _gone()
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = stop - start
    await response.prepare(request)
    while part:
        await response.write(part)
        start += len(part)
        if start >= stop:
            break
        part = await shared.read(head, start, min(CHUNK_BYTES, stop - start))
    if start < stop:  # deleted or kept again meanwhile: cut short, the connection closed
        response.force_close()
    await response.write_eof()
    return response
