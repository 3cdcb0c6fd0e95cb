"""Live media servers on loopback for source tests: live HLS, a fixed file, nginx RTMP, RTSP.

Each can be stopped and restarted on the same port. The HTTP servers run on the test's event
loop (aiohttp) as async context managers; nginx-rtmp, the publishing ffmpeg and the RTSP
server are real child processes. The Icecast-like server, which the ingest benchmark uses
too, is ``streamguard.testing.media_servers.IcecastServer``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from streamguard.testing.media_servers import AiohttpServer
from streamguard.testing.net import free_port, wait_listening

__all__ = [
    "FixedServer",
    "HlsServer",
    "NginxRtmp",
    "RtspServer",
    "StallingServer",
    "StatusServer",
    "hls_segments",
]


@dataclass(frozen=True, slots=True)
class HlsSegment:
    """One media segment of an HLS stream."""

    name: str
    seconds: float
    data: bytes


def hls_segments(media: Path, workdir: Path, seconds_per_segment: int = 1) -> list[HlsSegment]:
    """Cut a file into MPEG-TS AAC segments with ffmpeg's HLS muxer."""
    workdir.mkdir(parents=True, exist_ok=True)
    playlist = workdir / "all.m3u8"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(media),
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "hls",
            "-hls_time",
            str(seconds_per_segment),
            "-hls_list_size",
            "0",
            "-hls_segment_filename",
            str(workdir / "seg%04d.ts"),
            str(playlist),
        ],
        check=True,
    )
    text = playlist.read_text(encoding="utf-8")
    found = re.findall(r"#EXTINF:([0-9.]+),\s*\n(\S+)", text)
    return [HlsSegment(name, float(sec), (workdir / name).read_bytes()) for sec, name in found]


class HlsServer(AiohttpServer):
    """A live HLS playlist that keeps advancing: a sliding window of ``window`` segments, a
    new one each time the previous one's duration has passed since ``start``."""

    def __init__(self, segments: list[HlsSegment], *, window: int = 3) -> None:
        super().__init__()
        self.segments = segments
        self.window = window
        self.url = f"http://127.0.0.1:{self.port}/live/index.m3u8"
        self.started_at: float | None = None
        self.segment_requests = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/live/index.m3u8", self._playlist)
        app.router.add_get("/live/{name}", self._segment)
        return app

    async def start(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
        await super().start()

    def _published(self) -> int:
        """How many segments exist by now (the first ``window`` exist at the start)."""
        assert self.started_at is not None
        elapsed = time.monotonic() - self.started_at
        count, end = self.window, 0.0
        for segment in self.segments[self.window :]:
            end += segment.seconds
            if end > elapsed:
                break
            count += 1
        return min(count, len(self.segments))

    async def _playlist(self, request: web.Request) -> web.Response:
        published = self._published()
        first = max(0, published - self.window)
        target = max(1, round(max(s.seconds for s in self.segments)))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for segment in self.segments[first:published]:
            lines += [f"#EXTINF:{segment.seconds:.6f},", segment.name]
        return web.Response(
            text="\n".join(lines) + "\n", content_type="application/vnd.apple.mpegurl"
        )

    async def _segment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        published = {s.name: s for s in self.segments[: self._published()]}
        if name not in published:
            raise web.HTTPNotFound()
        self.segment_requests += 1
        return web.Response(body=published[name].data, content_type="video/mp2t")


class FixedServer(AiohttpServer):
    """Serves one fixed body (a recording, a playlist ...) at ``url``, as a plain web server."""

    def __init__(self, name: str, body: bytes | str, content_type: str) -> None:
        super().__init__()
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.url = f"http://127.0.0.1:{self.port}/fixed/{name}"
        self.requests = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/fixed/{name}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=self.body, content_type=self.content_type)


class StatusServer(AiohttpServer):
    """Answers every request at ``url`` with an HTTP error ``status`` (404 by default)."""

    def __init__(self, status: int = 404) -> None:
        super().__init__()
        self.status = status
        self.url = f"http://127.0.0.1:{self.port}/gone/room.mp3"
        self.requests = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/gone/{name}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(status=self.status, text="nothing here")


class StallingServer(AiohttpServer):
    """Sends the headers of a live MP3 stream at ``url``, then nothing, until killed."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/stall"
        self.requests = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stall", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await response.prepare(request)
        self._track(request)
        await self.closed.wait()
        return response


class NginxRtmp:
    """A real nginx with Debian's RTMP module on a free loopback port, and ffmpeg publishers."""

    MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists() or not self.MODULE.exists():
            raise RuntimeError("nginx with libnginx-mod-rtmp is not installed; scripts/test does")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "nginx.conf"
        self.config.write_text(
            f"load_module {self.MODULE};\n"
            "daemon off;\n"
            "master_process off;\n"
            f"pid {workdir}/nginx.pid;\n"
            f"error_log {workdir}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "rtmp {\n"
            "  server {\n"
            f"    listen 127.0.0.1:{self.port};\n"
            "    application live { live on; record off; }\n"
            "  }\n"
            "}\n",
            encoding="utf-8",
        )
        self._nginx: subprocess.Popen[bytes] | None = None
        self._publishers: list[subprocess.Popen[bytes]] = []

    def url(self, name: str) -> str:
        """The RTMP URL of stream ``name``."""
        return f"rtmp://127.0.0.1:{self.port}/live/{name}"

    def start(self) -> None:
        """Start nginx and wait until it listens."""
        with (self.workdir / "nginx.stderr").open("ab") as log:
            self._nginx = subprocess.Popen(
                [self.binary, "-p", str(self.workdir), "-c", str(self.config), "-e", "stderr"],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_listening(self.port, self._nginx, f"nginx-rtmp (see {self.workdir})")

    def publish(self, media: Path, name: str) -> subprocess.Popen[bytes]:
        """Publish ``media`` (AAC in m4a) to stream ``name`` at real-time pace."""
        with (self.workdir / f"publish-{name}.log").open("ab") as log:
            publisher = subprocess.Popen(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-re",
                    "-i",
                    str(media),
                    "-c:a",
                    "copy",
                    "-f",
                    "flv",
                    self.url(name),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._publishers.append(publisher)
        return publisher

    def stop(self) -> None:
        """Stop the publishers, then nginx."""
        for process in [*self._publishers, *([self._nginx] if self._nginx else [])]:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._publishers.clear()
        self._nginx = None


class RtspServer:
    """A real RTSP server (gst-rtsp-server, ``tests/support/rtsp_server.py``) on a free
    loopback port, playing a WAV file as Opus (and, with ``video``, an MPEG-TS file's H.264
    beside it); it can be killed and started again."""

    SCRIPT = Path(__file__).with_name("rtsp_server.py")
    PYTHON = "/usr/bin/python3"  # Debian's, with PyGObject (python3-gi)

    def __init__(self, media: Path, workdir: Path, video: Path | None = None) -> None:
        self.media = media
        self.video = video
        self.workdir = workdir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/room"

    def start(self) -> None:
        """Start the server and wait until it listens."""
        with (self.workdir / "rtsp.log").open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.PYTHON,
                    str(self.SCRIPT),
                    str(self.port),
                    str(self.media),
                    *([str(self.video)] if self.video else []),
                ],
                stdout=log,
                stderr=log,
            )
        wait_listening(self.port, self._process, f"the RTSP server (see {self.workdir})")

    def kill(self) -> None:
        """Stop at once (connections reset), as a crashed server would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None
