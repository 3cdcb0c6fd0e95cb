"""``GET /v1/evidence/{segment_id}``: an alerting segment's evidence clip (or a video
frame's JPEG), Range-capable.

Reached with the API or viewer token, or through a signed URL (``api.auth.EvidenceUrls``)
that the incident routes hand out so an ``<audio>`` element can play it. Only clips the
incident history names and that lie inside the evidence directory are served; one that
retention has deleted since is ``410 evidence_gone``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from streamguard.api.replies import problem
from streamguard.state.incidents import IncidentStore

__all__ = ["EvidenceRoutes"]

MEDIA_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".jpg": "image/jpeg",  # a video frame's evidence
}


class EvidenceRoutes:
    """The evidence clip handler."""

    def __init__(self, history: IncidentStore, directory: Path) -> None:
        self._history = history
        self._directory = directory

    def routes(self) -> list[web.RouteDef]:
        """The routes to register."""
        return [web.get("/v1/evidence/{segment_id}", self.clip)]

    async def clip(self, request: web.Request) -> web.StreamResponse:
        """The clip itself; aiohttp's ``FileResponse`` answers Range, If-Range and HEAD."""
        segment_id = request.match_info["segment_id"]
        evidence = await self._history.evidence_of(segment_id)
        if evidence is None:
            return problem(404, "no_evidence", f"no evidence kept for segment {segment_id!r}")
        path = await asyncio.to_thread(self._resolve, Path(evidence["clip_path"]))
        if path is None:
            return problem(410, "evidence_gone", "the clip was deleted by evidence retention")
        media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(
            path,
            headers={
                "Content-Type": media_type,
                "Cache-Control": "private, max-age=300",
                "X-Content-Type-Options": "nosniff",
            },
        )

    def _resolve(self, clip: Path) -> Path | None:
        """The clip's real path if it exists inside the evidence directory."""
        real = clip.resolve()
        if not real.is_relative_to(self._directory.resolve()) or not real.is_file():
            return None
        return real
