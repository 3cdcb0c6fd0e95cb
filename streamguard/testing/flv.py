"""A live HTTP-FLV server on loopback, as live-streaming CDNs serve rooms, for frame tests.

An FLV stream cannot be joined at any byte (unlike MPEG-TS): a listener needs the FLV
header and the codec set-up first. So, as real HTTP-FLV servers do, each listener gets the
header, the metadata tag and the AVC and AAC sequence headers, then the tags from the
keyframe at (or just before) the broadcast's live position, at real-time pace by the tags'
timestamps. The broadcast clock starts at the first ``start``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web

from streamguard.testing.media_servers import AiohttpServer

__all__ = ["FlvLiveServer", "FlvTag", "flv_tags"]

_AUDIO, _VIDEO, _SCRIPT = 8, 9, 18


@dataclass(frozen=True, slots=True)
class FlvTag:
    """One FLV tag with its trailing PreviousTagSize, as bytes, and what it holds."""

    kind: int
    millis: int
    data: bytes

    @property
    def keyframe(self) -> bool:
        return self.kind == _VIDEO and self.data[11] >> 4 == 1

    @property
    def setup(self) -> bool:
        """Metadata, or an AVC/AAC sequence header (packet type 0)."""
        if self.kind == _SCRIPT:
            return True
        return self.kind in (_AUDIO, _VIDEO) and self.data[12] == 0


def flv_tags(flv: bytes) -> tuple[bytes, list[FlvTag]]:
    """The FLV header (with PreviousTagSize0) and every tag of a whole FLV file."""
    header_size = int.from_bytes(flv[5:9], "big")
    head, position, tags = flv[: header_size + 4], header_size + 4, []
    while position + 11 <= len(flv):
        size = int.from_bytes(flv[position + 1 : position + 4], "big")
        millis = int.from_bytes(flv[position + 4 : position + 7], "big") | flv[position + 7] << 24
        end = position + 11 + size + 4
        tags.append(FlvTag(flv[position], millis, flv[position:end]))
        position = end
    return head, tags


class FlvLiveServer(AiohttpServer):
    """Broadcasts one FLV file live at ``url`` (see the module)."""

    def __init__(self, flv: bytes) -> None:
        super().__init__()
        self.head, self.tags = flv_tags(flv)
        self.url = f"http://127.0.0.1:{self.port}/live.flv"
        self.started_at: float | None = None
        self.connections = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/live.flv", self._live)
        return app

    async def start(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
        await super().start()

    def _now_millis(self) -> int:
        assert self.started_at is not None
        return int((time.monotonic() - self.started_at) * 1000)

    async def _live(self, request: web.Request) -> web.StreamResponse:
        now = self._now_millis()
        keys = [n for n, tag in enumerate(self.tags) if tag.keyframe and tag.millis <= now]
        if not keys or now > self.tags[-1].millis:
            raise web.HTTPNotFound(text="the broadcast is over")
        self.connections += 1
        response = web.StreamResponse(headers={"Content-Type": "video/x-flv"})
        await response.prepare(request)
        self._track(request)
        setup = b"".join(tag.data for tag in self.tags if tag.setup)
        try:
            await response.write(self.head + setup)
            for tag in self.tags[keys[-1] :]:
                if tag.setup:
                    continue
                ahead = (tag.millis - self._now_millis()) / 1000
                if ahead > 0:  # not on air yet
                    await asyncio.sleep(ahead)
                await response.write(tag.data)
        except ConnectionError:  # the listener left or the server was killed
            return response
        return response
