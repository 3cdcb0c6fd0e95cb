"""Live sources over real servers on loopback: Icecast-like HTTP, a live HLS playlist, RTMP
through nginx, RTSP from gst-rtsp-server. Audio is paced in real time, so each test reads
only a few seconds."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import SourceError
from streamguard.core.status import StreamState
from streamguard.ingest.source import Source
from streamguard.testing.media_servers import IcecastServer
from tests.support.media import encode_staircase, staircase_steps
from tests.support.media_servers import FixedServer, HlsServer, NginxRtmp, RtspServer, hls_segments
from tests.support.reading import joined, read_all, read_until

pytestmark = pytest.mark.slow

SETTINGS = IngestConfig(
    open_timeout=5,
    read_timeout=5,
    stall_timeout=2,
    backoff=BackoffConfig(initial=0.05, maximum=0.3),
)
BROADCAST_SECONDS = 40


def heard_seconds(seconds: float) -> Callable[[list[AudioChunk]], bool]:
    """A stop condition: at least ``seconds`` of audio were read."""

    def enough(chunks: list[AudioChunk]) -> bool:
        return sum(chunk.duration for chunk in chunks) >= seconds

    return enough


def assert_consecutive(chunks: list[AudioChunk]) -> None:
    """Heard in order with no gap: each chunk starts where the previous one ended, to the
    microsecond (stamps come from one anchor plus the sample count, so they cannot drift),
    and the staircase goes up one step at a time (nothing lost, nothing heard twice)."""
    for before, after in itertools.pairwise(chunks):
        end = before.wall_start + timedelta(seconds=before.duration)
        assert abs((after.wall_start - end).total_seconds()) < 1e-5
        assert (after.gap_before, after.discontinuity) == (0.0, False)
    steps = staircase_steps(joined(chunks))
    assert len(steps) >= 2
    assert steps == list(range(steps[0], steps[0] + len(steps)))


@pytest.fixture(scope="module")
def staircase_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "steps.mp3"
    return encode_staircase(path, BROADCAST_SECONDS).read_bytes()


@pytest.fixture
async def icecast(staircase_mp3: bytes) -> AsyncIterator[IcecastServer]:
    async with IcecastServer(staircase_mp3, BROADCAST_SECONDS) as server:
        yield server


async def test_http_live_mp3_is_heard_in_order_and_stamped_with_the_wall_clock(
    icecast: IcecastServer,
) -> None:
    opened = datetime.now(UTC)
    async with Source(icecast.url, SETTINGS, "radio-1") as source:
        chunks = await read_until(source, heard_seconds(3))
        assert source.live is True
        assert source.stats.state in (StreamState.ONLINE, StreamState.ENDED)
    assert_consecutive(chunks)
    # Live audio is stamped when it was heard: the burst the server sent on connect was
    # audio of the last half second, so the first stamp lies between that and the moment
    # the first chunk was delivered.
    assert (
        opened - timedelta(seconds=icecast.burst + 0.5)
        <= chunks[0].wall_start
        <= opened + (timedelta(seconds=10))
    )
    stats = source.stats
    assert (stats.connects, stats.reconnects, stats.gaps, stats.corrupt_packets) == (1, 0, (), 0)
    assert stats.state is StreamState.ENDED


async def test_live_hls_playlist_that_keeps_advancing(tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "steps.wav", 20)
    segments = hls_segments(media, tmp_path / "hls")
    async with HlsServer(segments) as server, Source(server.url, SETTINGS, "hls-1") as source:
        assert source.target.kind == "hls"
        chunks = await read_until(source, heard_seconds(5))
    assert_consecutive(chunks)
    # More segments were fetched than the first playlist listed: the reader followed it.
    assert server.segment_requests > server.window
    assert source.stats.reconnects == 0


async def test_an_hls_segment_lost_upstream_is_a_gap_without_a_reconnect(tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "steps.wav", 20)
    segments = hls_segments(media, tmp_path / "hls")
    lost = segments[4]  # media second 4 never reaches the playlist
    async with (
        HlsServer(segments[:4] + segments[5:]) as server,
        Source(server.url, SETTINGS, "hls-3") as source,
    ):
        chunks = await read_until(source, heard_seconds(6))
    stats = source.stats
    assert stats.reconnects == 0
    assert [gap.seconds for gap in stats.gaps] == pytest.approx([lost.seconds], abs=0.05)
    gapped = [chunk for chunk in chunks if chunk.gap_before > 0]
    assert len(gapped) == 1
    assert gapped[0].discontinuity
    # The stamps leave room for the lost second, and nothing else is missing or repeated.
    for before, after in itertools.pairwise(chunks):
        end = before.wall_start + timedelta(seconds=before.duration)
        assert (after.wall_start - end).total_seconds() == pytest.approx(after.gap_before, abs=1e-5)
    steps = staircase_steps(joined(chunks))
    assert 4 not in steps
    assert steps == [*range(steps[0], 4), *range(5, steps[-1] + 1)]


async def test_an_hls_playlist_cannot_send_the_reader_to_local_files(tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "steps.wav", 3)
    segment = hls_segments(media, tmp_path / "hls")[0]
    local = tmp_path / "hls" / segment.name
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:{segment.seconds:.6f},\nfile://{local}\n#EXT-X-ENDLIST\n"
    )
    settings = SETTINGS.model_copy(update={"max_reconnect_attempts": 1})
    server = FixedServer("index.m3u8", playlist, "application/vnd.apple.mpegurl")
    async with server, Source(server.url, settings, "hls-2") as source:
        with pytest.raises(SourceError, match=r"gave up on .*index\.m3u8 after 1 attempts"):
            await read_until(source, heard_seconds(1))
    # The segment is real audio: had FFmpeg opened it, something would have been heard.
    assert source.stats.heard_seconds == 0


async def test_a_recording_over_http_read_as_not_live_ends_at_its_end(tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "steps.mp3", 3).read_bytes()
    server = FixedServer("recording.mp3", media, "audio/mpeg")
    async with server, Source(server.url, SETTINGS, "rec-1", live=False) as source:
        chunks = await read_all(source)
    assert staircase_steps(joined(chunks)) == [0, 1, 2]
    assert (server.requests, source.stats.reconnects) == (1, 0)


@pytest.fixture
def nginx_rtmp(tmp_path: Path) -> Iterator[NginxRtmp]:
    server = NginxRtmp(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_rtmp_through_a_real_nginx_rtmp_server(nginx_rtmp: NginxRtmp, tmp_path: Path) -> None:
    media = encode_staircase(tmp_path / "steps.m4a", 20)
    nginx_rtmp.publish(media, "room-7")
    # The reader may connect before the publisher: it retries with backoff until it plays.
    async with Source(nginx_rtmp.url("room-7"), SETTINGS, "room-7") as source:
        assert source.target.kind == "rtmp"
        chunks = await read_until(source, heard_seconds(4))
    # The first chunks can hold nginx's buffered start; from then on all is consecutive.
    assert_consecutive(chunks)
    assert source.stats.gaps == ()


@pytest.fixture
def rtsp_room(tmp_path: Path) -> Iterator[RtspServer]:
    server = RtspServer(encode_staircase(tmp_path / "steps.wav", 30), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_rtsp_from_a_real_rtsp_server(rtsp_room: RtspServer) -> None:
    async with Source(rtsp_room.url, SETTINGS, "room-rtsp") as source:
        assert source.target.kind == "rtsp"
        chunks = await read_until(source, heard_seconds(4))
    # Opus over RTP, 48 kHz stereo, resampled to 16 kHz mono: every step, in order, no gap.
    assert_consecutive(chunks)
    assert source.stats.gaps == ()
    assert source.stats.reconnects == 0


async def test_a_killed_rtsp_server_is_reconnected_and_the_gap_flagged(
    rtsp_room: RtspServer,
) -> None:
    async def kill_and_restart(chunks: list[AudioChunk]) -> None:
        if len(chunks) == 2:
            rtsp_room.kill()
            await asyncio.sleep(1.5)
            await asyncio.to_thread(rtsp_room.start)  # plays the file from its start again

    def heard_after_the_gap(chunks: list[AudioChunk]) -> bool:
        return any(c.gap_before > 0 for c in chunks[:-3])

    async with Source(rtsp_room.url, SETTINGS, "room-rtsp") as source:
        chunks = await read_until(source, heard_after_the_gap, kill_and_restart)
    gap_at = [n for n, chunk in enumerate(chunks) if chunk.gap_before > 0]
    assert len(gap_at) == 1
    assert chunks[gap_at[0]].discontinuity
    assert source.stats.reconnects >= 1
    assert [gap.seconds for gap in source.stats.gaps] == [chunks[gap_at[0]].gap_before]
    # After the reconnect the restarted server's audio is heard from its first step.
    assert staircase_steps(joined(chunks[gap_at[0] :]))[:2] == [0, 1]
