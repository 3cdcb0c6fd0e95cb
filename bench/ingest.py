"""Ingest benchmark: how fast and how light the source + segmenter stage is.

Run: ``.venv/bin/python -m bench.ingest`` (``--help`` for sizes). It prints figures; it asserts
nothing. Two parts, each on inputs it generates itself with the ffmpeg CLI:

1. Files as fast as they go, on the same 10-minute 44.1 kHz stereo input (AAC in m4a, and
   MP3), in audio-seconds per CPU-second:
   (a) our pipeline: ``Source`` (reader thread, decode, resample to 16 kHz mono, hand-off
       to the event loop) into ``Segmenter`` (30 s segments); encoding is NOT included;
   (a+enc) the product's ``StreamPipeline``: the same ``Source`` into segmenter, encoder to
       mp3 at the configured 32 kbit/s (off the event loop) and an engine that answers at
       once, so the row is ingest plus encoding and nothing else;
   (b) a raw PyAV decode + resample loop, the practical limit of (a);
   (c) Debian's ffmpeg CLI cutting the same input into 30 s mp3 segments (``-f segment``),
       which is what a user would script instead; it includes mp3 encoding, so (a+enc)/(c)
       is the like-for-like ratio. (c') is the same ffmpeg decoding and resampling to a null
       output, to compare with (a).
2. N paced live streams (Icecast-like HTTP MP3, 128 kbit/s stereo, served at real-time pace
   by a separate server process on loopback): CPU share and resident memory per stream and
   the event loop's stalls (worst and 99th percentile, measured in a window of their own
   after the CPU's: the 10 ms ticker that measures them costs CPU) in one streamguard
   process, against raw PyAV (one thread per stream: demux, decode, resample in half-second
   batches, nothing else; our floor) and one ffmpeg process per stream reading the same
   stream (into 30 s mp3 segments, and into a null output). ``--live-room`` serves the
   fleet bench's room instead (16 kHz mono MP3 64 kbit/s, speech).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import av
from av.audio.resampler import AudioResampler

from streamguard.config.ingest import BackoffConfig, EncodingConfig, IngestConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.segment import Segment
from streamguard.core.verdict import Outcome, Suggestion, Verdict
from streamguard.ingest.segmenter import Segmenter
from streamguard.ingest.source import Source
from streamguard.streams.pipeline import SegmentResult, StreamPipeline

SEGMENT_SECONDS = 30
SETTINGS = IngestConfig(
    open_timeout=10, read_timeout=10, stall_timeout=10, backoff=BackoffConfig(initial=0.2)
)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def make_input(path: Path, seconds: int, codec: list[str]) -> Path:
    """Music-like stereo input: pink noise under a tone that changes every second."""
    if not path.exists():
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=color=pink:sample_rate=44100:amplitude=0.2:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc='0.3*sin(2*PI*(300+40*mod(floor(t),20))*t)':s=44100:d={seconds}",
            "-filter_complex",
            "amix=inputs=2,aformat=channel_layouts=stereo",
            *codec,
            str(path),
        )
    return path


# -- part 1: files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    name: str
    audio_seconds: float
    cpu_seconds: float

    @property
    def speed(self) -> float:
        return self.audio_seconds / self.cpu_seconds


def best_of(runs: int, measure: Callable[[], Throughput]) -> Throughput:
    """The run with the least CPU time: other load on the machine only ever adds to it."""
    return min((measure() for _ in range(runs)), key=lambda t: t.cpu_seconds)


def pipeline(path: Path) -> Throughput:
    async def run() -> float:
        attached = datetime.now(UTC)
        segmenter = Segmenter("bench", attached, SEGMENT_SECONDS)
        heard = 0
        async with Source(str(path), SETTINGS, "bench", attached_at=attached) as source:
            async for chunk in source:
                heard += sum(len(s.samples) for s in segmenter.push(chunk))
        tail = segmenter.flush()
        heard += len(tail.samples) if tail else 0
        return heard / SAMPLE_RATE

    start = time.process_time()
    audio = asyncio.run(run())
    return Throughput("(a) Source -> Segmenter", audio, time.process_time() - start)


class InstantEngine:
    """Answers every segment at once, so (a+enc) measures ingest and encoding only. Every
    segment is "to review", so the pipeline encodes each as evidence: the worst case (the
    local engine encodes only risky segments; AMS writes its own WAV excerpt)."""

    name = "bench-instant"
    version = "1"
    segments_in_flight = 1

    async def moderate(self, segment: Segment, *, biz_type: str | None = None) -> Verdict:
        return Verdict(
            segment.id, Outcome.MODERATED, self.name, self.version, suggestion=Suggestion.REVIEW
        )

    async def aclose(self) -> None:
        return None


def encoded_pipeline(path: Path) -> Throughput:
    async def run(clip_dir: Path) -> float:
        attached = datetime.now(UTC)
        heard = 0
        encoded = 0

        async def on_result(result: SegmentResult) -> None:
            nonlocal heard, encoded
            heard += round(result.segment.duration * SAMPLE_RATE)
            encoded += result.clip is not None

        pipeline = StreamPipeline(
            stream_id="bench",
            attached_at=attached,
            segment_seconds=SEGMENT_SECONDS,
            encoding=EncodingConfig(format="mp3", bitrate=32_000),
            clip_dir=clip_dir,
            engine=InstantEngine(),
            on_result=on_result,
        )
        async with Source(str(path), SETTINGS, "bench", attached_at=attached) as source:
            await pipeline.run(source)
        if encoded != pipeline.segments_cut:
            raise RuntimeError(f"only {encoded} of {pipeline.segments_cut} segments encoded")
        return heard / SAMPLE_RATE

    with tempfile.TemporaryDirectory() as clip_dir:
        start = time.process_time()
        audio = asyncio.run(run(Path(clip_dir)))
        cpu = time.process_time() - start
    return Throughput("(a+enc) StreamPipeline: Source -> Segmenter -> mp3 32k", audio, cpu)


def raw_pyav(path: Path) -> Throughput:
    start = time.process_time()
    samples = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        for packet in container.demux(stream):
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    samples += out.samples
        for out in resampler.resample(None):
            samples += out.samples
    cpu = time.process_time() - start
    return Throughput("(b) raw PyAV decode+resample", samples / SAMPLE_RATE, cpu)


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ffmpeg_segment(path: Path, seconds: float) -> Throughput:
    with tempfile.TemporaryDirectory() as out:
        before = child_cpu()
        ffmpeg(
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-c:a",
            "libmp3lame",
            "-b:a",
            "32k",
            "-f",
            "segment",
            "-segment_time",
            str(SEGMENT_SECONDS),
            f"{out}/seg%03d.mp3",
        )
        return Throughput("(c) ffmpeg -f segment to mp3", seconds, child_cpu() - before)


def ffmpeg_null(path: Path, seconds: float) -> Throughput:
    before = child_cpu()
    ffmpeg("-i", str(path), "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "/dev/null")
    return Throughput("(c') ffmpeg decode+resample to null", seconds, child_cpu() - before)


def files_part(workdir: Path, seconds: int, runs: int) -> list[str]:
    lines = []
    inputs = {
        "AAC (m4a) 128k": make_input(
            workdir / f"input-{seconds}s.m4a", seconds, ["-c:a", "aac", "-b:a", "128k"]
        ),
        "MP3 128k": make_input(
            workdir / f"input-{seconds}s.mp3", seconds, ["-c:a", "libmp3lame", "-b:a", "128k"]
        ),
    }
    for label, path in inputs.items():
        a = best_of(runs, partial(pipeline, path))
        ae = best_of(runs, partial(encoded_pipeline, path))
        b = best_of(runs, partial(raw_pyav, path))
        c = best_of(runs, partial(ffmpeg_segment, path, a.audio_seconds))
        c0 = best_of(runs, partial(ffmpeg_null, path, a.audio_seconds))
        lines.append(f"### {seconds} s of 44.1 kHz stereo {label}, best of {runs}")
        lines.append("")
        lines.append("| run | audio s | CPU s | audio s per CPU s |")
        lines.append("|---|---:|---:|---:|")
        for t in (a, ae, b, c, c0):
            lines.append(
                f"| {t.name} | {t.audio_seconds:.1f} | {t.cpu_seconds:.2f} | {t.speed:.0f} |"
            )
        lines.append("")
        lines.append(
            f"(a)/(b) = {a.speed / b.speed:.2f} (target >= 0.5); "
            f"(a)/(c) = {a.speed / c.speed:.2f}; (a)/(c') = {a.speed / c0.speed:.2f}"
        )
        lines.append("")
        lines.append(
            f"(a+enc)/(b) = {ae.speed / b.speed:.2f}; "
            f"(a+enc)/(c) = {ae.speed / c.speed:.2f} (like for like: both decode, resample, "
            f"cut and encode mp3 32k)"
        )
        lines.append("")
    return lines


# -- part 2: paced live streams ------------------------------------------------------------


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError("no Pss")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


class LiveServer:
    """The Icecast-like test server in its own process, so its CPU is not counted as ours."""

    def __init__(self, media: Path, seconds: float) -> None:
        self.media = media
        self.seconds = seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest", "--serve", str(self.media), str(self.seconds)],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


async def serve(media: Path, seconds: float) -> None:
    from streamguard.testing.media_servers import IcecastServer

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    data = await asyncio.to_thread(media.read_bytes)
    async with IcecastServer(data, seconds) as server:
        print(server.url, flush=True)
        await stop.wait()


@dataclass(frozen=True)
class LiveFigures:
    streams: int
    cpu_share_per_stream: float  # fraction of one core
    rss_kib_per_stream: float
    worst_stall_ms: float
    p99_stall_ms: float
    heard_seconds: float
    reconnects: int


async def our_live(url: str, streams: int, warmup: float, seconds: float) -> LiveFigures:
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    heard = [0.0] * streams
    baseline = rss_kib()
    sources: list[Source] = []
    done, ticking = asyncio.Event(), asyncio.Event()

    async def watch_loop() -> None:
        # Not while the CPU is measured: a 10 ms ticker wakes the loop 100 times a second,
        # which at 10-20 streams costs as much per stream as the reading (0.05-0.1 %).
        await ticking.wait()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lateness.append(loop.time() - before - 0.01)

    async def one(i: int) -> None:
        attached = datetime.now(UTC)
        segmenter = Segmenter(f"bench-{i}", attached, SEGMENT_SECONDS)
        async with Source(url, SETTINGS, f"bench-{i}", attached_at=attached) as source:
            sources.append(source)
            async for chunk in source:
                segmenter.push(chunk)
                heard[i] += chunk.duration
        segmenter.flush()

    async def measure() -> tuple[float, int]:
        await asyncio.sleep(warmup)
        cpu = time.process_time()
        await asyncio.sleep(seconds)
        used = time.process_time() - cpu
        rss = rss_kib()
        ticking.set()  # then the loop's stalls, over a window of their own
        await asyncio.sleep(seconds / 2)
        for source in sources:
            source.detach()
        done.set()
        return used, rss

    async with asyncio.TaskGroup() as group:
        group.create_task(watch_loop(), name="bench.loop-watch")
        for i in range(streams):
            group.create_task(one(i), name=f"stream[bench-{i}]")
        measured = group.create_task(measure(), name="bench.measure")
    used, rss = measured.result()
    return LiveFigures(
        streams=streams,
        cpu_share_per_stream=used / seconds / streams,
        rss_kib_per_stream=(rss - baseline) / streams,
        worst_stall_ms=max(lateness) * 1000,
        p99_stall_ms=sorted(lateness)[int(len(lateness) * 0.99)] * 1000,
        heard_seconds=sum(heard) / streams,
        reconnects=sum(s.stats.reconnects for s in sources),
    )


def raw_live(url: str, streams: int, warmup: float, seconds: float) -> float:
    """CPU share per stream of raw PyAV reading ``streams`` live streams, a thread each."""
    stop = threading.Event()

    def read() -> None:
        with av.open(url, timeout=(10, 10)) as container:
            stream = container.streams.audio[0]
            resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            fifo = av.AudioFifo()
            for packet in container.demux(stream):
                if stop.is_set():
                    break
                for frame in stream.decode(packet):
                    frame.pts = None
                    fifo.write(frame)
                    if fifo.samples >= frame.sample_rate // 2:
                        resampler.resample(fifo.read())

    threads = [threading.Thread(target=read, name=f"raw-{i}") for i in range(streams)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(warmup)
        cpu = time.process_time()
        time.sleep(seconds)
        used = time.process_time() - cpu
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    return used / seconds / streams


FFMPEG_OUTPUTS = {
    "segment": "-c:a libmp3lame -b:a 32k -f segment -segment_time 30 {out}/{i}-%03d.mp3",
    "null": "-f s16le /dev/null",
}
"""What each ffmpeg process does with the stream after decoding it to 16 kHz mono."""


def ffmpeg_live(
    url: str, streams: int, warmup: float, seconds: float, output: str
) -> tuple[float, float, float]:
    """CPU share, RSS and PSS (KiB) per process of ``streams`` ffmpeg processes."""
    with tempfile.TemporaryDirectory() as out:
        processes = [
            subprocess.Popen(
                [
                    *("ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", url),
                    *("-ac", "1", "-ar", str(SAMPLE_RATE)),
                    *FFMPEG_OUTPUTS[output].format(out=out, i=i).split(),
                ]
            )
            for i in range(streams)
        ]
        try:
            time.sleep(warmup)
            before = [proc_cpu(p.pid) for p in processes]
            time.sleep(seconds)
            failed = [p.returncode for p in processes if p.poll() is not None]
            if failed:
                raise RuntimeError(f"{len(failed)} ffmpeg readers exited early, codes {failed}")
            used = sum(proc_cpu(p.pid) - b for p, b in zip(processes, before, strict=True))
            rss = sum(rss_kib(p.pid) for p in processes) / streams
            pss = sum(pss_kib(p.pid) for p in processes) / streams
        finally:
            for p in processes:
                p.terminate()
            for p in processes:
                p.wait(timeout=10)
    return used / seconds / streams, rss, pss


def live_media(workdir: Path, length: int, room: bool) -> tuple[Path, str]:
    """The live input and its description: music-like 128k stereo, or the fleet's room."""
    if not room:
        media = make_input(
            workdir / f"live-{length}s-128k.mp3", length, ["-c:a", "libmp3lame", "-b:a", "128k"]
        )
        return media, "HTTP MP3 128 kbit/s 44.1 kHz stereo"
    from bench.soak.media import broadcast

    media = workdir / f"room-{length}s-64k.mp3"
    if not media.exists():
        media.write_bytes(broadcast(length)[0])
    return media, "the fleet bench's room, HTTP MP3 64 kbit/s 16 kHz mono"


def live_part(
    workdir: Path, counts: list[int], ffmpeg_counts: list[int], seconds: float, room: bool
) -> list[str]:
    warmup = 5.0
    length = int(warmup + seconds * 1.5 + 20)
    media, what = live_media(workdir, length, room)
    lines = [
        f"### Paced live streams: {what}, {seconds:.0f} s measured after {warmup:.0f} s warm-up",
        "",
        "| reader | streams | CPU per stream (% of a core) | memory per stream | "
        "loop stall: worst (99th percentile) | audio heard per stream | reconnects |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in counts:
        with LiveServer(media, length) as server:
            figures = asyncio.run(our_live(server.url, n, warmup, seconds))
        lines.append(
            f"| streamguard Source+Segmenter, 1 process | {n} | "
            f"{figures.cpu_share_per_stream * 100:.2f} | "
            f"{figures.rss_kib_per_stream / 1024:.2f} MiB RSS growth | "
            f"{figures.worst_stall_ms:.0f} ms ({figures.p99_stall_ms:.1f} ms) | "
            f"{figures.heard_seconds:.1f} s | "
            f"{figures.reconnects} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    for n in counts[:1]:
        with LiveServer(media, length) as server:
            cpu = raw_live(server.url, n, warmup, seconds)
        lines.append(
            f"| raw PyAV decode+resample, 1 thread per stream | {n} | {cpu * 100:.2f} |"
            " - | - | - | - |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    runs = [("segment", n) for n in ffmpeg_counts] + [("null", n) for n in ffmpeg_counts[:1]]
    for output, n in runs:
        with LiveServer(media, length) as server:
            cpu, rss, pss = ffmpeg_live(server.url, n, warmup, seconds, output)
        what = "-f segment mp3" if output == "segment" else "decode+resample to null"
        lines.append(
            f"| ffmpeg {what}, 1 process per stream | {n} | {cpu * 100:.2f} | "
            f"{rss / 1024:.1f} MiB RSS ({pss / 1024:.1f} MiB PSS) | - | - | - |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--file-seconds", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", default="20,50,100")
    parser.add_argument("--ffmpeg-streams", default="20,50")
    parser.add_argument("--live-seconds", type=float, default=30)
    parser.add_argument(
        "--live-room", action="store_true", help="live streams of the fleet bench's room"
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sg-bench")
    parser.add_argument("--serve", nargs=2, metavar=("MEDIA", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve[0]), float(args.serve[1])))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"ingest benchmark, {os.cpu_count()} cores, PyAV {av.__version__}", flush=True)
    if args.file_seconds:
        print("\n".join(files_part(args.workdir, args.file_seconds, args.runs)), flush=True)
    counts = [int(n) for n in args.streams.split(",") if n]
    ffmpeg_counts = [int(n) for n in args.ffmpeg_streams.split(",") if n]
    if counts or ffmpeg_counts:
        print(
            "\n".join(
                live_part(args.workdir, counts, ffmpeg_counts, args.live_seconds, args.live_room)
            )
        )


if __name__ == "__main__":
    main()
