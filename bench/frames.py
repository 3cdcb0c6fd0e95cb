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
real pace; a file is read as fast as it goes, which costs the same per media second). Then:
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
from dataclasses import dataclass
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=120, help="length of the input")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (least CPU kept)")
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


if __name__ == "__main__":
    main()
