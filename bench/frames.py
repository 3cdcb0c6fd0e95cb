"""Frames benchmark: what sampling a stream's video costs, and how fast frames are judged.

Run: ``.venv/bin/python -m bench.frames`` (``--help`` for sizes). It prints figures; it
asserts nothing. The input is generated with PyAV: a "scene show" (``streamguard.testing
.video``) of 640x360 H.264 at 25 fps with a keyframe every 2 s (a common live setting) and
AAC audio, a new picture every 10 s, some pictures shown again, in MPEG-TS. Rows, all in the
same run (the machine is shared with other work: compare the ratios, not the absolutes):

(a) ``Source`` with frames (keyframes only, one per 5 s, scene changes, dHash dedupe) and
    its audio resampled to 16 kHz mono, as a stream with video is read;
(a0) the same ``Source`` without frames (the audio only, as before issue 16);
(f) Debian's ffmpeg doing the same work in one process, as a user would write it:
    ``ffmpeg -skip_frame nokey -i IN -map 0:a -ac 1 -ar 16000 -f s16le - -map 0:v
    -vf fps=1/5 -f rawvideo -pix_fmt rgb24 -`` into /dev/null;
(f0) ffmpeg decoding and resampling the audio only.

CPU per media second at 1x is the CPU share one live stream costs (a stream is read at its
real pace; a file is read as fast as it goes, which costs the same per media second). With
``--live N`` the same four rows are also measured on N paced live streams (the show served
over HTTP by a separate process, as ``bench.ingest`` does): one streamguard process reading
N ``Source`` s against N ffmpeg processes. Then:
frames judged per second per core by the offline engine (open_nsfw, one onnxruntime thread)
on frames of the input, and frames judged (= Tencent IMS ``ImageModeration`` calls, one per
frame, once an IMS engine exists) per stream-hour for this input.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.ingest import LiveServer, proc_cpu
from streamguard.config.frames import FramesConfig
from streamguard.config.ingest import IngestConfig
from streamguard.core.frame import Frame
from streamguard.engines.image.opennsfw import OpenNsfwEngine
from streamguard.ingest.source import Source
from streamguard.testing.video import SceneShow

SETTINGS = IngestConfig(open_timeout=10, read_timeout=10, stall_timeout=10)


@dataclass(frozen=True)
class Cost:
    name: str
    media_seconds: float
    cpu_seconds: float
    frames: int = 0

    @property
    def share(self) -> float:
        """CPU seconds per media second: one live stream's share of a core."""
        return self.cpu_seconds / self.media_seconds


def read_source(
    path: Path, seconds: float, frames: FramesConfig | None
) -> tuple[Cost, list[Frame]]:
    async def run() -> list[Frame]:
        taken: list[Frame] = []

        async def take() -> None:
            async for frame in source.frames():
                taken.append(frame)

        async with (
            Source(str(path), SETTINGS, "bench", frames=frames) as source,
            asyncio.TaskGroup() as group,
        ):
            group.create_task(take(), name="bench.frames")
            async for _ in source:
                pass
        return taken

    start = time.process_time()
    taken = asyncio.run(run())
    cpu = time.process_time() - start
    name = "(a) Source, audio + frames" if frames else "(a0) Source, audio only"
    return Cost(name, seconds, cpu, len(taken)), taken


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ffmpeg_cost(path: Path, seconds: float, *, frames: bool) -> Cost:
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    if frames:
        args += ["-skip_frame", "nokey"]
    args += ["-i", str(path), "-map", "0:a", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"]
    if frames:
        args += ["-map", "0:v", "-vf", "fps=1/5", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    before = child_cpu()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    name = "(f) ffmpeg -skip_frame nokey, fps=1/5 + audio" if frames else "(f0) ffmpeg audio only"
    return Cost(name, seconds, child_cpu() - before)


def best(runs: int, measure: Callable[[], Cost]) -> Cost:
    """The run with the least CPU: other load on the machine only ever adds to it."""
    return min((measure() for _ in range(runs)), key=lambda c: c.cpu_seconds)


async def judge_rate(frames: list[Frame], rounds: int) -> tuple[int, float]:
    engine = OpenNsfwEngine()
    await engine.judge([(frames[0].id, frames[0].picture)])  # warm up
    pictures = [(f.id, f.picture) for f in frames] * rounds
    start = time.process_time()
    for item in pictures:
        await engine.judge([item])
    return len(pictures), time.process_time() - start


async def our_live(url: str, streams: int, warmup: float, seconds: float, frames: bool) -> float:
    """CPU share of a core per stream of ``streams`` paced live Sources (frames taken and
    dropped on the floor, as a judge that keeps up would leave them)."""
    sources: list[Source] = []
    config = FramesConfig(interval=5.0) if frames else None

    async def one(i: int) -> None:
        async with (
            Source(url, SETTINGS, f"bench-{i}", frames=config) as source,
            asyncio.TaskGroup() as group,
        ):
            sources.append(source)
            group.create_task(_drain(source), name=f"stream[bench-{i}].frames")
            async for _ in source:
                pass

    async def measure() -> float:
        await asyncio.sleep(warmup)
        cpu = time.process_time()
        await asyncio.sleep(seconds)
        used = time.process_time() - cpu
        for source in sources:
            source.detach()
        return used

    async with asyncio.TaskGroup() as group:
        for i in range(streams):
            group.create_task(one(i), name=f"stream[bench-{i}]")
        measured = group.create_task(measure(), name="bench.measure")
    return measured.result() / seconds / streams


async def _drain(source: Source) -> None:
    async for _ in source.frames():
        pass


def ffmpeg_live(url: str, streams: int, warmup: float, seconds: float, frames: bool) -> float:
    """CPU share of a core per process of ``streams`` ffmpeg readers of the live stream."""
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    args += ["-skip_frame", "nokey"] if frames else []
    args += ["-i", url, "-map", "0:a", "-ac", "1", "-ar", "16000", "-f", "s16le", "/dev/null"]
    if frames:
        args += [
            "-map",
            "0:v",
            "-vf",
            "fps=1/5",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "/dev/null",
        ]
    processes = [subprocess.Popen(args) for _ in range(streams)]
    try:
        time.sleep(warmup)
        before = [proc_cpu(p.pid) for p in processes]
        time.sleep(seconds)
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("an ffmpeg reader exited early")
        used = sum(proc_cpu(p.pid) - b for p, b in zip(processes, before, strict=True))
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(timeout=10)
    return used / seconds / streams


def live_part(show: SceneShow, streams: int, seconds: float) -> None:
    warmup = 5.0
    length = warmup + seconds + 20
    live_show = replace(show, seeds=show.seeds[: max(1, int(length) // show.scene_seconds + 1)])
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "live.ts"
        media.write_bytes(live_show.encode())
        rows = []
        for frames in (True, False):
            with LiveServer(media, live_show.seconds) as server:
                ours = asyncio.run(our_live(server.url, streams, warmup, seconds, frames))
            with LiveServer(media, live_show.seconds) as server:
                theirs = ffmpeg_live(server.url, streams, warmup, seconds, frames)
            rows.append((frames, ours, theirs))
    print(f"paced live streams: {streams} at once, {seconds:g} s measured after {warmup:g} s")
    for frames, ours, theirs in rows:
        what = "audio + frames" if frames else "audio only    "
        print(
            f"  {what}: ours {ours * 100:.2f}% of a core per stream, ffmpeg {theirs * 100:.2f}% "
            f"({ours / theirs:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=120, help="length of the input")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (least CPU kept)")
    parser.add_argument("--live", type=int, default=0, help="also N paced live streams")
    parser.add_argument("--live-seconds", type=float, default=20.0, help="measured live time")
    args = parser.parse_args()
    scenes = args.seconds // 10
    show = SceneShow(
        seeds=tuple(1 + (n % max(2, scenes * 2 // 3)) for n in range(scenes)),
        scene_seconds=10,
        fps=25,
        gop_seconds=2.0,
        width=640,
        height=360,
    )
    print("frames benchmark; the machine is shared with other work: compare ratios")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "show.ts"
        path.write_bytes(show.encode())
        seconds = float(show.seconds)
        distinct = len(set(show.seeds))
        print(
            f"input: {seconds:.0f} s, {show.width}x{show.height} H.264 {show.fps} fps, keyframe "
            f"every {show.gop_seconds:g} s, {distinct} distinct pictures in {scenes} scenes"
        )
        config = FramesConfig(interval=5.0)
        taken: list[Frame] = []

        def ours() -> Cost:
            cost, frames = read_source(path, seconds, config)
            taken[:] = frames
            return cost

        rows = [
            best(args.runs, ours),
            best(args.runs, lambda: read_source(path, seconds, None)[0]),
            best(args.runs, lambda: ffmpeg_cost(path, seconds, frames=True)),
            best(args.runs, lambda: ffmpeg_cost(path, seconds, frames=False)),
        ]
    for row in rows:
        extra = f"  frames taken {row.frames}" if row.frames else ""
        print(
            f"{row.name:<48} CPU {row.cpu_seconds:6.2f} s  = {row.share * 100:5.2f}% of a core "
            f"per live stream{extra}"
        )
    ratio = rows[0].cpu_seconds / rows[2].cpu_seconds
    print(f"(a)/(f): {ratio:.2f}x ffmpeg's CPU for the same sampling (target <= 1.0)")
    ours_extra = (rows[0].cpu_seconds - rows[1].cpu_seconds) / seconds * 100
    theirs_extra = (rows[2].cpu_seconds - rows[3].cpu_seconds) / seconds * 100
    print(
        f"frames add {ours_extra:.2f}% of a core per stream to ours, "
        f"{theirs_extra:.2f}% to ffmpeg's"
    )
    judged, cpu = asyncio.run(judge_rate(taken, rounds=4))
    print(
        f"offline engine (open_nsfw, 1 thread): {judged / cpu:.1f} frames judged per second "
        f"per core ({cpu / judged * 1000:.0f} ms CPU each)"
    )
    per_hour = len(taken) / seconds * 3600
    print(
        f"frames judged per stream-hour on this input: {per_hour:.0f} (at most "
        f"{3600 / config.interval:.0f} from the interval, plus scene changes, minus duplicates); "
        f"= IMS ImageModeration calls per stream-hour with a cloud engine"
    )
    if args.live:
        live_part(show, args.live, args.live_seconds)


if __name__ == "__main__":
    main()
