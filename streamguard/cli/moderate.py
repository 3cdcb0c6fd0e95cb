"""``streamguard moderate URL-or-FILE``: one stream in the foreground, results as JSON lines.

stdout gets one JSON object per line: ``{"type": "segment", ...}`` for every segment (its
metadata, clip and verdict), ``{"type": "frame", ...}`` for every frame sampled from the
video of a stream or file that has one (its metadata, JPEG when not a Pass, and verdict)
and, when no ``[mqtt]`` broker is configured, every alert the policy raises, exactly as it
would be published (``alert.v1`` schema, with ``alert_id``). With a broker configured,
alerts go to the bus through the durable outbox instead.
stderr gets a progress bar for recordings of known duration, or a status line for live
streams, and at the end a summary for a person (segments, flagged, alerts). A recording (a
file, or an HTTP resource that is not live: see ``--live``) is read once; one that brings no
audio at all is an error (exit 1), and so is a run in which every segment failed to be
judged (exit 1: nothing was moderated). Ctrl-C stops reading; the partial tail is still
judged and printed, exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from streamguard.app.components import Components, open_components
from streamguard.cli.common import config_or_report, report_failure
from streamguard.config import Config
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import StreamGuardError
from streamguard.core.metrics import Metrics
from streamguard.core.redact import redact
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.ingest.source import Source
from streamguard.moderation.outcomes import Outcomes
from streamguard.streams.frames import FrameJudge, FrameResult
from streamguard.streams.pipeline import SegmentResult, StreamPipeline

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "moderate", help="moderate one stream or file in the foreground, JSON lines out"
    )
    parser.add_argument("source", help="URL (http, https, HLS, RTMP, RTSP) or local file")
    parser.add_argument("--segment", type=int, choices=(15, 30, 60), help="segment seconds")
    parser.add_argument("-c", "--config", type=Path, help="config file (default: built-ins)")
    parser.add_argument("--stream-id", default="cli", help="stream id used in segment ids")
    parser.add_argument("--profile", default="default", help="policy profile (from the config)")
    parser.add_argument(
        "--live",
        choices=("auto", "true", "false"),
        default="auto",
        help="true: reopen the source when it ends; false: read it once (auto: as it says)",
    )
    parser.add_argument("--keep-clips", type=Path, metavar="DIR", help="keep encoded clips in DIR")
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress/status line on stderr (auto: when stderr is a terminal)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config) if args.config else Config()
    if config is None:
        return 2
    try:
        stream = StreamConfig(
            id=args.stream_id,
            url=args.source,
            segment_seconds=args.segment,
            profile=args.profile,
            live={"true": True, "false": False}.get(args.live, "auto"),
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = {"id": "--stream-id", "segment_seconds": "--segment"}.get(
                str(error["loc"][0]), str(error["loc"][0])
            )
            print(f"streamguard moderate: {field}: {error['msg']}", file=sys.stderr)
        return 2
    if stream.profile not in config.profiles:
        known = ", ".join(sorted(config.profiles))
        print(
            f"streamguard moderate: --profile {stream.profile!r} is not one of {known}",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_moderate(config, stream, args))
    except (StreamGuardError, ExceptionGroup) as exc:
        return report_failure(exc)


async def _moderate(config: Config, stream: StreamConfig, args: argparse.Namespace) -> int:
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    summary = _Summary()
    async with AsyncExitStack() as stack:
        clip_dir = args.keep_clips or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="streamguard-"))
        )
        live = None if stream.live == "auto" else stream.live
        source = Source(
            stream.url, config.ingest, stream.id, live=live, frames=config.ingest.frames
        )
        # Durable state only matters with a bus (the outbox) or AMS (tasks in flight).
        durable = config.mqtt is not None or config.engine.type == "ams"
        parts = await open_components(
            stack,
            config,
            metrics=Metrics(),
            state_dir=config.state_path() if durable else clip_dir,
            evidence=False,
        )
        await stack.enter_async_context(source)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, source.detach)
        stack.callback(loop.remove_signal_handler, signal.SIGINT)
        pipeline = StreamPipeline(
            stream_id=stream.id,
            attached_at=source.attached_at,
            segment_seconds=stream.segment_seconds or config.ingest.segment_seconds,
            encoding=config.ingest.encoding,
            clip_dir=clip_dir,
            engine=parts.engine,
            on_result=lambda result: _emit(parts.outcomes, stream, result, summary),
            biz_type=lambda: parts.profiles.biz_type(stream),
        )
        work = parts.supervisor.spawn(f"stream[{stream.id}]", pipeline.run(source))
        frames = _judge_frames(parts, stream, source, clip_dir)
        if show:
            parts.supervisor.spawn(
                f"stream[{stream.id}].progress",
                _progress(source, pipeline, work, sys.stderr),
            )
        await work
        if frames is not None:
            await frames
        summary.alerts = parts.sink.raised.counts
    return summary.report(sys.stderr)


_FAILED = {Outcome.FAILED, Outcome.NOT_MODERATED}


@dataclass(slots=True)
class _Summary:
    """What a person wants to know at the end: segments by outcome, flagged, alerts."""

    outcomes: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, result: SegmentResult) -> None:
        verdict = result.verdict
        self.outcomes[verdict.outcome.value] += 1
        self.failed += verdict.outcome in _FAILED
        if verdict.outcome is Outcome.MODERATED and verdict.suggestion is not Suggestion.PASS:
            self.flagged[f"{verdict.suggestion.value} {verdict.label}"] += 1

    def report(self, out: TextIO) -> int:
        """Print the summary; 1 when there were segments and every one failed, else 0."""
        total = sum(self.outcomes.values())
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items()))
        flagged = ", ".join(f"{n} {what}" for what, n in sorted(self.flagged.items()))
        alerts = sum(self.alerts.values())
        out.write(
            f"== {total} segment(s)" + (f" ({outcomes})" if outcomes else "")
            + f"; {sum(self.flagged.values())} flagged" + (f" ({flagged})" if flagged else "")
            + f"; {alerts} alert(s)\n"
        )  # fmt: skip
        if total and self.failed == total:
            out.write("streamguard moderate: every segment failed; nothing was moderated\n")
            return 1
        return 0


async def _emit(
    outcomes: Outcomes, stream: StreamConfig, result: SegmentResult, summary: _Summary
) -> None:
    """Print the segment's line, then decide, record and alert on it."""
    summary.add(result)
    line = {
        "type": "segment",
        **result.segment.metadata(),
        "clip": None
        if result.clip is None
        else {
            "format": result.clip.format,
            "sha256": result.clip.sha256,
            "bytes": result.clip.size,
        },
        "verdict": result.verdict.to_json(),
    }
    print(json.dumps(line), flush=True)
    await outcomes.handle(stream, result.segment, result.verdict, None)


def _judge_frames(
    parts: Components, stream: StreamConfig, source: Source, clip_dir: Path
) -> asyncio.Task[None] | None:
    """The task judging the source's frames (none without an image engine)."""
    if parts.image_engine is None:
        return None
    judge = FrameJudge(
        stream_id=stream.id,
        engine=parts.image_engine,
        clip_dir=clip_dir,
        on_result=lambda result: _emit_frame(parts.outcomes, stream, result),
        biz_type=lambda: parts.profiles.image_biz_type(stream),
    )
    return parts.supervisor.spawn(f"stream[{stream.id}].frames", judge.run(source.frames()))


async def _emit_frame(outcomes: Outcomes, stream: StreamConfig, result: FrameResult) -> None:
    """Print the frame's line, then decide, record and alert on it."""
    info = result.frame.info()
    line = {
        "type": "frame",
        **info.metadata(),
        "jpeg": None if result.jpeg is None else str(result.jpeg),
        "verdict": result.verdict.to_json(),
    }
    print(json.dumps(line), flush=True)
    await outcomes.handle_frame(stream, info, result.verdict, None)


async def _progress(
    source: Source,
    pipeline: StreamPipeline,
    work: asyncio.Task[None],
    out: TextIO,
) -> None:
    """Redraw one line on stderr until the work is done."""
    while not work.done():
        stats = source.stats
        duration = stats.duration
        if duration:
            share = min(1.0, stats.heard_seconds / duration)
            bar = "#" * int(share * 30)
            line = (
                f"[{bar:<30}] {share:4.0%} {stats.heard_seconds:7.1f}/{duration:.1f} s"
                f"  segments {pipeline.segments_cut}"
            )
        else:
            line = (
                f"{stats.state.value:<12} heard {stats.heard_seconds:8.1f} s"
                f"  segments {pipeline.segments_cut}  reconnects {stats.reconnects}"
                f"  corrupt {stats.corrupt_packets}"
                + (f"  last error: {stats.last_error}" if stats.last_error else "")
            )
        out.write("\r\x1b[K" + redact(line))
        out.flush()
        await asyncio.wait([work], timeout=0.5)
    out.write("\n")
    out.flush()
