"""Recordings and live streams over plain HTTP on loopback: a recording is read once, a live
source that ends is reopened with backoff, and live stamps never run ahead of the clock."""

from __future__ import annotations

import itertools
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import SourceError
from streamguard.core.status import StreamState
from streamguard.ingest.protocols import resolve_source
from streamguard.ingest.source import Source
from streamguard.testing.media_servers import IcecastServer, garbage
from tests.support.media import encode_staircase, staircase_steps
from tests.support.media_servers import FixedServer
from tests.support.reading import joined, read_all, read_until

pytestmark = pytest.mark.slow

SETTINGS = IngestConfig(
    open_timeout=5,
    read_timeout=5,
    stall_timeout=2,
    backoff=BackoffConfig(initial=0.2, maximum=0.3),
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "steps.mp3"
    return encode_staircase(path, 3).read_bytes()


async def test_a_recording_over_plain_http_is_read_once_and_ends(recording: bytes) -> None:
    server = FixedServer("recording.mp3", recording, "audio/mpeg")
    async with server, Source(server.url, SETTINGS, "rec-1") as source:
        chunks = await read_all(source)
    assert staircase_steps(joined(chunks)) == [0, 1, 2]
    stats = source.stats
    assert (server.requests, stats.reconnects, stats.live) == (1, 0, False)
    assert stats.state is StreamState.ENDED
    assert stats.duration == pytest.approx(3.0, abs=0.1)
    # Stamped like a file: attach time plus media offset.
    assert chunks[0].wall_start == source.attached_at


async def test_an_icecast_stream_is_live_by_its_icy_headers(recording: bytes) -> None:
    async with (
        IcecastServer(recording * 3, 9) as server,
        Source(server.url, SETTINGS, "r") as source,
    ):
        await read_until(source, lambda chunks: len(chunks) >= 1)
    assert source.live is True
    assert source.stats.duration is None


async def test_a_live_source_that_ends_is_reopened_with_backoff_never_ahead_of_the_clock(
    recording: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamguard.ingest")
    server = FixedServer("loop.mp3", recording, "audio/mpeg")
    received: list[tuple[AudioChunk, datetime]] = []

    def note(chunks: list[AudioChunk]) -> None:
        received.append((chunks[-1], datetime.now(UTC)))

    def two_passes(chunks: list[AudioChunk]) -> bool:
        return server.requests >= 2 and sum(c.duration for c in chunks) >= 6

    async with server, Source(server.url, SETTINGS, "loop-1", live=True) as source:
        chunks = await read_until(source, two_passes, note)
    assert source.live is True
    delays = [
        float(d) for d in re.findall(r"the source ended; reopening in ([\d.]+) s", caplog.text)
    ]
    assert delays
    # Logged to 10 ms: the floor of the jittered first step, give or take that rounding.
    floor = SETTINGS.backoff.initial * (1 - SETTINGS.backoff.jitter) - 0.005
    assert all(d >= floor for d in delays), delays
    # The whole recording arrives at once on every connection; the second pass is stamped
    # after the first and must be held back until the wall clock gets there.
    for chunk, at in received:
        assert chunk.wall_start + timedelta(seconds=chunk.duration) <= at
    for before, after in itertools.pairwise(chunks):
        assert after.wall_start >= before.wall_start + timedelta(seconds=before.duration * 0.999)


def test_uppercase_schemes_are_normalised_for_ffmpeg() -> None:
    for url in ("HTTP://127.0.0.1:8000/a.mp3", "Http://127.0.0.1:8000/a.mp3"):
        assert resolve_source(url, SETTINGS).url == "http://127.0.0.1:8000/a.mp3"
    hls = resolve_source("HLS+HTTP://127.0.0.1:8000/live", SETTINGS)
    assert (hls.kind, hls.url) == ("hls", "http://127.0.0.1:8000/live")


async def test_an_uppercase_scheme_is_read_like_a_lowercase_one(recording: bytes) -> None:
    server = FixedServer("recording.mp3", recording, "audio/mpeg")
    url = server.url.replace("http://", "HTTP://")
    async with server, Source(url, SETTINGS, "rec-1") as source:
        chunks = await read_all(source)
    assert staircase_steps(joined(chunks)) == [0, 1, 2]


async def test_random_bytes_named_mp3_are_an_error_not_a_silent_end(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(garbage(3, 20_000))
    settings = SETTINGS.model_copy(update={"allow_local_files": True})
    async with Source(junk, settings, "junk") as source:
        with pytest.raises(SourceError, match="no audio was decoded from") as caught:
            await read_all(source)
    assert str(junk) in str(caught.value)
