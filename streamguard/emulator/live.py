"""LIVE_AUDIO: the emulator pulls a stream with streamguard's own ingest and slices it.

AMS pulls a live task's ``Input.Url`` itself and cuts it by the console's slice length
(spec §3.1, §4.3). The emulator does the same with the daemon's ``Source`` (PyAV in a
thread, reconnects with backoff, gaps flagged) and ``Segmenter``: each full slice, and the
tail when the stream ends, goes to ``on_slice``. A stream that cannot be opened, or is lost
for longer than its reconnect attempts (AMS: up to 16 for network failures), ends the
task; a recording (a file behind a URL) ends at its end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.errors import SourceError
from streamguard.core.segment import Segment
from streamguard.emulator.media import DecodeFailure
from streamguard.ingest.segmenter import Segmenter
from streamguard.ingest.source import Source

__all__ = ["LivePull", "pull_settings"]


def pull_settings(*, timeout: float, reconnects: int) -> IngestConfig:
    """How the emulator reads live streams: network protocols only, AMS's retry budget."""
    return IngestConfig(
        allow_local_files=False,
        open_timeout=timeout,
        read_timeout=timeout,
        max_reconnect_attempts=reconnects,
        backoff=BackoffConfig(initial=1.0, maximum=10.0),
    )


class LivePull:
    """One live task's pull: ``run`` until the stream ends or ``stop`` is called."""

    def __init__(
        self, url: str, name: str, started: datetime, settings: IngestConfig, slice_seconds: int
    ) -> None:
        self.url = url
        self.name = name
        self.started = started
        self.settings = settings
        self.slice_seconds = slice_seconds
        self._source: Source | None = None
        self._stopped = False

    def stop(self) -> None:
        """Stop pulling (the task was cancelled): the slice being cut is still handed on."""
        self._stopped = True
        if self._source is not None:
            self._source.detach()

    async def run(self, on_slice: Callable[[Segment], Awaitable[bool]]) -> float:
        """Pull and slice; ``on_slice`` returning False stops. Seconds heard; raises
        ``DecodeFailure`` (URL_ERROR) when the stream cannot be had."""
        segmenter = Segmenter(self.name, self.started, self.slice_seconds)
        heard = 0.0
        try:
            source = Source(self.url, self.settings, self.name, attached_at=self.started)
            async with source:
                self._source = source
                if self._stopped:
                    source.detach()
                async for chunk in source:
                    heard += chunk.duration
                    for piece in segmenter.push(chunk):
                        if not await on_slice(piece):
                            return heard
        except SourceError as exc:
            if heard == 0.0:
                raise DecodeFailure("URL_ERROR", f"the stream could not be pulled: {exc}") from exc
        finally:
            self._source = None
        tail = segmenter.flush()
        if tail is not None:
            await on_slice(tail)
        return heard
