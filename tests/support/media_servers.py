"""Live media servers on loopback for source tests: Icecast-like HTTP, live HLS, nginx RTMP.

Each owns its resources as an async context manager and can be killed and restarted on the
same port. The HTTP servers run on the test's event loop (aiohttp); nginx-rtmp and the
publishing ffmpeg are real child processes.
"""

from __future__ import annotations

import abc
import asyncio
import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web

from tests.support.net import free_port, wait_listening

__all__ = [
    "FixedServer",
    "HlsServer",
    "IcecastServer",
    "NginxRtmp",
    "garbage",
    "hls_segments",
]

_PACE = 0.05  # seconds between writes of a paced stream


def garbage(seed: int = 0, size: int = 3000) -> bytes:
    """Junk for the middle of a stream: random bytes, then fake MP3/ADTS frame headers with
    random payloads, which a parser accepts as frames and a decoder rejects."""
    rng = random.Random(seed)
    fake_mp3 = b"".join(b"\xff\xfb\x50\xc4" + rng.randbytes(200) for _ in range(10))
    fake_adts = b"".join(
        bytes([0xFF, 0xF1, 0x50, 0x80, 0x1B, 0x1F, 0xFC]) + rng.randbytes(209) for _ in range(10)
    )
    return rng.randbytes(size) + fake_mp3 + fake_adts


class _AiohttpServer(abc.ABC):
    """An aiohttp app on a fixed loopback port that can be killed (connections reset) and
    started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._open: set[asyncio.Transport] = set()
        self.closed = asyncio.Event()  # set while killed: silent handlers return then

    @abc.abstractmethod
    def _app(self) -> web.Application:
        """The routes this server answers."""

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self.closed.clear()
        self._runner = web.AppRunner(self._app(), shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def kill(self) -> None:
        """Drop every connection at once, as a crashed server would, and stop listening."""
        self.closed.set()
        for transport in list(self._open):
            transport.abort()
        self._open.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _track(self, request: web.Request) -> asyncio.Transport | None:
        transport = request.transport
        if isinstance(transport, asyncio.Transport):
            self._open.add(transport)
            return transport
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()


class IcecastServer(_AiohttpServer):
    """One encoded file broadcast like an Icecast mount, at real-time pace.

    The broadcast clock starts at the first ``start``; a listener gets the stream from the
    live position, minus a ``burst`` of recent audio (as Icecast's burst-on-connect), so a
    restarted server carries on where the broadcast is, not where it stopped. The next
    connection can be made to ``stall_after`` seconds (socket open, no bytes) or to receive
    ``garbage_after`` seconds of audio followed by junk bytes.
    """

    def __init__(
        self, media: bytes, seconds: float, *, burst: float = 0.5, content_type: str = "audio/mpeg"
    ) -> None:
        super().__init__()
        self.media = media
        self.byte_rate = len(media) / seconds
        self.burst = burst
        self.content_type = content_type
        self.url = f"http://127.0.0.1:{self.port}/live"
        self.started_at: float | None = None
        self.stall_after: float | None = None
        self.garbage_after: float | None = None
        self.connections = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/live", self._live)
        return app

    async def start(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
        await super().start()

    def _live_position(self) -> int:
        assert self.started_at is not None
        return int((time.monotonic() - self.started_at) * self.byte_rate)

    async def _live(self, request: web.Request) -> web.StreamResponse:
        position = max(0, self._live_position() - int(self.burst * self.byte_rate))
        if position >= len(self.media):
            raise web.HTTPNotFound(text="the broadcast is over")
        self.connections += 1
        stall, self.stall_after = self.stall_after, None
        junk, self.garbage_after = self.garbage_after, None
        response = web.StreamResponse(
            headers={"Content-Type": self.content_type, "icy-name": "streamguard test"}
        )
        await response.prepare(request)
        self._track(request)
        connected = time.monotonic()
        try:
            while position < len(self.media):
                end = min(len(self.media), self._live_position())
                if end > position:
                    await response.write(self.media[position:end])
                    position = end
                since = time.monotonic() - connected
                if stall is not None and since >= stall:
                    await self.closed.wait()  # keep the socket open, send nothing
                    return response
                if junk is not None and since >= junk:
                    await response.write(garbage())
                    junk = None
                await asyncio.sleep(_PACE)
        except ConnectionError:  # the client left or the server was killed
            return response
        return response


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


class HlsServer(_AiohttpServer):
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


class FixedServer(_AiohttpServer):
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
    loopback port, playing a WAV file as Opus; it can be killed and started again."""

    SCRIPT = Path(__file__).with_name("rtsp_server.py")
    PYTHON = "/usr/bin/python3"  # Debian's, with PyGObject (python3-gi)

    def __init__(self, media: Path, workdir: Path) -> None:
        self.media = media
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
                [self.PYTHON, str(self.SCRIPT), str(self.port), str(self.media)],
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
