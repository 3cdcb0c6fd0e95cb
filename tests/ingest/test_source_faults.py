"""Live sources when things go wrong: a killed server, a silent socket, junk on the wire, a
host nobody answers on. Real servers on loopback, real PyAV."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.backoff import Backoff
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import SourceError, SourceTimeout
from streamguard.core.status import StreamState
from streamguard.ingest.source import Source
from streamguard.testing.media_servers import IcecastServer
from streamguard.testing.net import free_port
from tests.support.media import encode_staircase, encode_tone, staircase_steps, tone_runs
from tests.support.media_servers import StallingServer, StatusServer
from tests.support.reading import GUARD_SECONDS, joined, read_all, read_until

pytestmark = pytest.mark.slow

SETTINGS = IngestConfig(
    open_timeout=5,
    read_timeout=5,
    stall_timeout=2,
    backoff=BackoffConfig(initial=0.05, maximum=0.3),
)
BROADCAST_SECONDS = 40


@pytest.fixture(scope="module")
def staircase_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "steps.mp3"
    return encode_staircase(path, BROADCAST_SECONDS).read_bytes()


@pytest.fixture
async def icecast(staircase_mp3: bytes) -> AsyncIterator[IcecastServer]:
    async with IcecastServer(staircase_mp3, BROADCAST_SECONDS) as server:
        yield server


def after_gap(chunks_after: int) -> Callable[[list[AudioChunk]], bool]:
    """A stop condition: a chunk flagged with a gap, then ``chunks_after`` more."""

    def enough(chunks: list[AudioChunk]) -> bool:
        marks = [i for i, chunk in enumerate(chunks) if chunk.gap_before > 0]
        return bool(marks) and len(chunks) - marks[0] > chunks_after

    return enough


def assert_monotone_without_repeats(chunks: list[AudioChunk]) -> None:
    """Stamps never go back, a gap shows in the stamps as in ``gap_before``, and no part of
    the broadcast is heard twice."""
    for before, after in itertools.pairwise(chunks):
        end = before.wall_start + timedelta(seconds=before.duration)
        assert after.wall_start >= end - timedelta(microseconds=1)  # datetime rounds to 1 µs
        assert (after.wall_start - end).total_seconds() == pytest.approx(after.gap_before, abs=1e-5)
    steps = staircase_steps(joined(chunks))
    assert steps == sorted(set(steps))


async def test_a_killed_server_is_reconnected_and_the_gap_flagged(icecast: IcecastServer) -> None:
    async def kill_and_restart(chunks: list[AudioChunk]) -> None:
        if len(chunks) == 2:
            await icecast.kill()
            # The broadcast goes on without us. Down 2.5 s, less the 0.5 s the server bursts
            # on connect: at least 2 s are never heard, which always spans a whole step.
            await asyncio.sleep(2.5)
            await icecast.start()

    async with Source(icecast.url, SETTINGS, "radio-1") as source:
        chunks = await read_until(source, after_gap(2), kill_and_restart)
    gapped = [chunk for chunk in chunks if chunk.gap_before > 0]
    assert len(gapped) == 1
    assert gapped[0].discontinuity
    stats = source.stats
    assert stats.reconnects >= 1
    assert [gap.seconds for gap in stats.gaps] == [gapped[0].gap_before]
    assert_monotone_without_repeats(chunks)
    # The audio of the downtime is missing, not invented: the staircase skips a step.
    assert gapped[0].gap_before > 1.5  # about 2 s; stamps are estimates, to some ms
    steps = staircase_steps(joined(chunks))
    assert steps[-1] - steps[0] >= len(steps)


async def test_a_socket_that_stays_open_but_silent_is_a_stall(
    icecast: IcecastServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A read timeout far longer than the stall timeout: only the stall bound can catch it.
    caplog.set_level(logging.WARNING, logger="streamguard.ingest")
    settings = SETTINGS.model_copy(update={"read_timeout": 60.0, "stall_timeout": 1.0})
    icecast.stall_after = 1.5
    async with Source(icecast.url, settings, "radio-1") as source:
        chunks = await read_until(source, after_gap(1))
    stats = source.stats
    assert stats.stalls == 1
    assert stats.reconnects == 1
    assert "no data for 1 s" in caplog.text
    assert stats.last_error is None  # audio flows again: the stall is history
    assert len(stats.gaps) == 1
    assert_monotone_without_repeats(chunks)


async def test_garbage_mid_stream_is_skipped_and_counted(icecast: IcecastServer) -> None:
    icecast.garbage_after = 1.0
    async with Source(icecast.url, SETTINGS, "radio-1") as source:

        def enough(chunks: list[AudioChunk]) -> bool:
            return sum(c.duration for c in chunks) >= 4

        chunks = await read_until(source, enough)
    stats = source.stats
    assert stats.corrupt_packets > 0
    assert (stats.reconnects, stats.gaps) == (0, ())
    assert_monotone_without_repeats(chunks)


async def test_a_sample_rate_change_mid_broadcast_is_heard_through(tmp_path: Path) -> None:
    # 3 s at 44.1 kHz, then the same bitrate at 22.05 kHz, as one live MP3 stream.
    first = encode_tone(tmp_path / "a.mp3", 500, 3, rate=44_100).read_bytes()
    second = encode_tone(tmp_path / "b.mp3", 1500, 3, rate=22_050).read_bytes()
    server = IcecastServer(first + second, 6.0)

    def enough(chunks: list[AudioChunk]) -> bool:
        return any(run.hz == 1500 and run.windows >= 6 for run in tone_runs(joined(chunks)))

    async with server, Source(server.url, SETTINGS, "radio-2") as source:
        chunks = await read_until(source, enough)
    stats = source.stats
    assert stats.format_changes == 1
    assert (stats.reconnects, stats.gaps) == (0, ())
    assert sum(chunk.discontinuity for chunk in chunks) == 1
    heard = {run.hz: run.windows for run in tone_runs(joined(chunks)) if run.windows > 1}
    # The listener joined at the start of the broadcast: all of the first part was heard
    # (12 quarter-seconds, less codec priming), then the second.
    assert heard[500] >= 11
    assert heard[1500] >= 6


async def test_an_unreachable_host_is_retried_then_given_up_with_the_reason() -> None:
    url = f"http://127.0.0.1:{free_port()}/live"
    settings = SETTINGS.model_copy(update={"max_reconnect_attempts": 3})
    async with Source(url, settings, "radio-1") as source:
        with pytest.raises(SourceError) as caught:
            await read_all(source)
    message = str(caught.value)
    assert "after 3 attempts" in message
    assert url in message
    assert "Connection refused" in message
    stats = source.stats
    assert (stats.state, stats.connects, stats.failed_attempts) == (StreamState.ENDED, 0, 3)


async def test_reopening_waits_the_configured_backoff_capped_after_the_jitter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/live"
    backoff = BackoffConfig(initial=0.1, maximum=0.3, multiplier=2, jitter=0.5)
    settings = SETTINGS.model_copy(update={"backoff": backoff, "max_reconnect_attempts": 5})
    caplog.set_level(logging.WARNING, logger="streamguard.ingest")
    async with Source(url, settings, "radio-1", rng=random.Random(7)) as source:
        with pytest.raises(SourceError, match="after 5 attempts"):
            await read_all(source)
    logged = re.findall(r"reopening in ([\d.]+) s", caplog.text)
    # The same schedule and the same draws: four waits, between the five attempts.
    schedule, rng = Backoff.of(backoff), random.Random(7)
    assert logged == [f"{schedule.delay(attempt, rng):.2f}" for attempt in range(1, 5)]
    assert max(float(delay) for delay in logged) <= backoff.maximum


async def test_an_unreachable_host_keeps_being_retried_and_reported_until_detached() -> None:
    url = f"http://127.0.0.1:{free_port()}/live"
    async with Source(url, SETTINGS, "radio-1") as source:
        reader = asyncio.create_task(read_all(source), name="test.read")
        async with asyncio.timeout(GUARD_SECONDS):
            # Stats are a snapshot of the reader thread: polled, as a status line polls them.
            while source.stats.failed_attempts < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        stats = source.stats
        assert stats.state is StreamState.FAILING
        assert stats.last_error is not None
        assert "Connection refused" in stats.last_error
        assert "Errno" not in stats.last_error
        source.detach()
        assert await reader == []
    assert source.stats.state is StreamState.ENDED


async def test_a_server_that_accepts_but_never_answers_times_out_on_open() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection open, answer nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = SETTINGS.model_copy(update={"open_timeout": 0.5, "max_reconnect_attempts": 2})
    async with server, Source(f"http://127.0.0.1:{port}/live", settings, "radio-1") as source:
        with pytest.raises(SourceTimeout, match="timed out"):
            await read_all(source)
    assert source.stats.connects == 0


async def wait_failing(source: Source, attempts: int) -> None:
    """Poll the stats (as a status line does) until ``attempts`` opens failed."""
    async with asyncio.timeout(GUARD_SECONDS):
        while source.stats.failed_attempts < attempts:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_404_is_failing_with_a_plain_error_and_its_attempts() -> None:
    async with StatusServer(404) as server, Source(server.url, SETTINGS, "radio-1") as source:
        await wait_failing(source, 2)
        stats = source.stats
        source.detach()
    assert stats.state is StreamState.FAILING
    assert stats.last_error == f"cannot open {server.url}: the server answered 404 Not Found"
    assert server.requests >= 2


async def test_a_stall_after_the_headers_is_failing_with_the_reason() -> None:
    settings = SETTINGS.model_copy(update={"open_timeout": 0.5, "stall_timeout": 0.5})
    async with StallingServer() as server, Source(server.url, settings, "radio-1") as source:
        await wait_failing(source, 2)
        stats = source.stats
        source.detach()
    assert stats.state is StreamState.FAILING
    assert stats.last_error == f"cannot open {server.url}: timed out"
