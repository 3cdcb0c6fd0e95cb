"""A stream's source: one PyAV reader on its own thread, handing 16 kHz mono audio to asyncio.

::

    reader thread  stream[ID].source                        event loop
    av.open ─▶ demux ─▶ decode ─▶ resample ─▶ batch ─▶ (bounded hand-off) ─▶ async for chunk

Why a dedicated, named ``threading.Thread`` rather than ``asyncio.to_thread``: a live reader
blocks for the life of the stream, and ``to_thread`` borrows the loop's default executor,
which has ``min(32, cores + 4)`` workers (6 on two cores). A few live streams would starve
every other ``to_thread`` caller (the database, the encoder). A thread of its own per stream
costs one OS thread and is named after the stream in ``py-spy`` and in logs.

The reader never closes a container from another thread (unsafe while a read blocks in
FFmpeg). Every blocking step is bounded instead: ``av.open(timeout=(open, read))`` bounds the
open/probe and every packet read, and the read bound is never longer than the stall timeout,
so a socket that stays open but sends nothing is given up within the stall timeout. PyAV 18
offers no interrupt callback of our own (its ``timeout`` installs FFmpeg's), so
:meth:`Source.detach` takes effect at the next packet: within the read bound while reading,
within the open timeout while connecting, at once while waiting to reconnect.

Backpressure: the hand-off holds ``IngestConfig.queue_chunks`` chunks (about 1 s each). When
it is full the reader waits, so a file is read no faster than the pipeline consumes it. A
live source whose consumer falls behind is read late, not dropped: its socket buffers fill
and the server slows down or drops the connection, which is then an ordinary reconnect with
the gap recorded. Heard audio is never thrown away to make room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import cast

import av
import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.packet import Packet

from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.chunk import SAMPLE_RATE, AudioChunk, Pcm
from streamguard.core.errors import SourceError, SourceTimeout
from streamguard.core.status import StreamState
from streamguard.ingest.protocols import SourceTarget, resolve_source

__all__ = [
    "CHUNK_SAMPLES",
    "Gap",
    "MonoResampler",
    "Source",
    "SourceStats",
    "reconnect_delay",
]

log = logging.getLogger(__name__)

CHUNK_SAMPLES = SAMPLE_RATE
"""A chunk carries about one second of audio: few hand-offs, no latency a segment notices."""

_SETTLE_SECONDS = 1.0
# A live connection often starts with a burst of buffered audio (Icecast's burst-on-connect,
# the last three HLS segments). Its wall-clock anchor is the earliest "receive time minus
# audio heard so far" seen during this first second, which stays close to the truth whichever
# way the audio arrives.

_HAND_OFF_POLL = 0.2  # seconds between checks of the close flag while the hand-off is full

_TIMELINE_TOLERANCE = 0.5  # media timestamps may wobble by this much without meaning a break
_MAX_SKIPPED = 60.0  # a forward jump larger than this is a reset timeline, not lost audio


@dataclass(frozen=True, slots=True)
class Gap:
    """Room audio that was not heard: from ``at`` (UTC) for ``seconds``."""

    at: datetime
    seconds: float


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A snapshot of how reading a source has gone so far.

    ``failed_attempts`` counts consecutive opens that brought no audio (reset when audio is
    heard); ``stalls`` counts connections given up because no audio came within the stall
    (or read) timeout; ``format_changes`` counts mid-stream sample-rate or layout changes.
    """

    state: StreamState
    connects: int
    reconnects: int
    failed_attempts: int
    corrupt_packets: int
    stalls: int
    format_changes: int
    gaps: tuple[Gap, ...]
    heard_seconds: float
    last_error: str | None


def reconnect_delay(backoff: BackoffConfig, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before reopening after ``attempt`` (1-based) consecutive failures.

    Exponential from ``initial`` by ``multiplier``, capped at ``maximum``, then spread by
    ``±jitter`` so streams that failed together do not retry together.
    """
    base = min(backoff.maximum, backoff.initial * backoff.multiplier ** max(0, attempt - 1))
    return base * (1.0 + rng.uniform(-backoff.jitter, backoff.jitter))


class MonoResampler:
    """Any decoded audio to 16 kHz mono s16, across mid-stream format changes.

    PyAV's resampler raises ``ValueError`` when the input's rate or layout changes; the old
    one is flushed first (its filter still holds a few milliseconds) and a new one built.
    """

    def __init__(self) -> None:
        self._resampler = self._new()
        self.changes = 0

    @staticmethod
    def _new() -> AudioResampler:
        return AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def feed(self, frame: AudioFrame) -> list[Pcm]:
        """Resample one decoded frame; returns the 16 kHz samples it completed."""
        # Timestamps are ours to keep (by sample count); stream pts jump at HLS
        # discontinuities and reconnects and must not steer the filter.
        frame.pts = None
        try:
            return _pcm(self._resampler.resample(frame))
        except ValueError:
            tail = self.flush()
            self.changes += 1
            return tail + _pcm(self._resampler.resample(frame))

    def flush(self) -> list[Pcm]:
        """Everything still held, and a fresh resampler for whatever comes next."""
        tail = _pcm(self._resampler.resample(None))
        self._resampler = self._new()
        return tail


def _pcm(frames: list[AudioFrame]) -> list[Pcm]:
    # The packed s16 plane read directly: to_ndarray() costs four times as much (it stacks
    # planes), which is a third of the reader's own time. Planes are padded: count samples.
    return [np.frombuffer(memoryview(f.planes[0]), np.int16, f.samples) for f in frames]


class _End:
    """The reader is done and everything it heard was handed over."""


_END = _End()


@dataclass
class _Counters:
    state: StreamState = StreamState.CONNECTING
    connects: int = 0
    failed_attempts: int = 0
    corrupt_packets: int = 0
    stalls: int = 0
    format_changes: int = 0
    gaps: list[Gap] = field(default_factory=list)
    heard_samples: int = 0
    last_error: str | None = None


class Source:
    """Reads one stream's audio until it ends (a file) or is detached (a live stream).

    Use it as ``async with Source(url, settings, stream_id) as source: async for chunk in
    source: ...``. The URL (or local path) is checked against the protocol allow-list at
    construction and :class:`~streamguard.core.errors.ProtocolNotAllowed` is raised at once.

    A live source that ends, errors or stalls is reopened with capped, jittered exponential
    backoff; the next chunk then carries ``gap_before`` (wall time not covered by heard audio)
    and ``discontinuity``. With ``IngestConfig.max_reconnect_attempts`` set, the iterator
    raises :class:`~streamguard.core.errors.SourceError` after that many consecutive opens without
    audio. A file ends at its end; one that cannot be opened raises at once.

    :meth:`detach` stops reading; the iterator ends after the last decoded audio has been
    delivered. Leaving the ``async with`` block without draining discards what is undelivered
    and waits for the reader thread to finish.

    ``live`` overrides the default (network URLs are live, local files are not), e.g. for a
    recording served over HTTP. ``attached_at`` stamps a file's audio (attach time plus media
    offset); live audio is stamped from the wall clock when it was received.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        settings: IngestConfig,
        stream_id: str,
        *,
        live: bool | None = None,
        attached_at: datetime | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.target: SourceTarget = resolve_source(source, settings)
        self.live = self.target.live if live is None else live
        self.stream_id = stream_id
        self.attached_at = attached_at or datetime.now(UTC)
        self._settings = settings
        self._rng = rng or random.Random()
        # A socket that stays open and sends nothing must be noticed within the stall timeout.
        self._read_timeout = min(settings.read_timeout, settings.stall_timeout)
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._stop = threading.Event()  # detach: finish delivering, then end
        self._closing = threading.Event()  # leaving the context: stop waiting on the consumer
        self._slots = threading.Semaphore(settings.queue_chunks)
        self._queue: asyncio.Queue[AudioChunk | BaseException | _End] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None
        self._ended = False
        # Reader-thread state: the batch being filled and the wall clock of the audio.
        self._batch: list[Pcm] = []
        self._batch_samples = 0
        self._batch_discontinuity = False
        self._anchor: float | None = None  # wall time (epoch s) of the connection's sample 0
        self._anchor_estimate = float("inf")
        self._first_audio_at: float | None = None
        self._connection_samples = 0  # samples decoded on this connection
        self._stamped_samples = 0  # of those, already stamped into delivered chunks
        self._audio_end: float | None = None  # wall time just after the last delivered sample
        self._reconnected = False
        self._media_next: float | None = None  # media time the next decoded frame should have
        self._skipped = 0.0  # media seconds the demuxer skipped, not yet in a chunk's gap

    # -- the asyncio side -------------------------------------------------------------------

    async def __aenter__(self) -> Source:
        self._loop = asyncio.get_running_loop()
        self._finished = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, name=f"stream[{self.stream_id}].source", daemon=True
        )
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        self._stop.set()
        if self._finished is not None:
            await self._finished
        if self._thread is not None:
            self._thread.join()

    def detach(self) -> None:
        """Stop reading; the iterator ends once everything already decoded is delivered."""
        self._stop.set()

    @property
    def stats(self) -> SourceStats:
        """How reading has gone so far (safe to call from the event loop at any time)."""
        with self._lock:
            c = self._counters
            return SourceStats(
                state=c.state,
                connects=c.connects,
                reconnects=max(0, c.connects - 1),
                failed_attempts=c.failed_attempts,
                corrupt_packets=c.corrupt_packets,
                stalls=c.stalls,
                format_changes=c.format_changes,
                gaps=tuple(c.gaps),
                heard_seconds=c.heard_samples / SAMPLE_RATE,
                last_error=c.last_error,
            )

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> AudioChunk:
        if self._finished is None:
            raise RuntimeError("iterate a Source inside 'async with'")
        if self._ended:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, AudioChunk):
            self._slots.release()
            return item
        self._ended = True
        if isinstance(item, BaseException):
            raise item
        raise StopAsyncIteration

    # -- the reader thread ------------------------------------------------------------------

    def _run(self) -> None:
        final: AudioChunk | BaseException | _End = _END
        try:
            self._read_until_done()
        except SourceError as exc:
            final = exc
        except Exception as exc:  # a bug: hand it to the consumer, never lose it in a thread
            log.exception("stream %s: reader failed", self.stream_id)
            final = exc
        finally:
            with self._lock:
                self._counters.state = StreamState.ENDED
            self._hand_over(final)
            assert self._loop is not None
            assert self._finished is not None
            finished = self._finished

            def done() -> None:
                if not finished.done():
                    finished.set_result(None)

            # A closed loop has nobody left waiting for the reader.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(done)

    def _read_until_done(self) -> None:
        failures = 0
        while not self._stop.is_set():
            heard_before = self._counters.heard_samples
            error: SourceError | None = None
            try:
                self._read_connection()
            except SourceError as exc:
                if not self.live:
                    raise
                error = exc
            if self._stop.is_set() or not self.live:
                return
            heard = self._counters.heard_samples > heard_before or self._connection_samples > 0
            failures = 0 if heard else failures + 1
            reason = str(error) if error else "the source ended"
            with self._lock:
                self._counters.failed_attempts = failures
                self._counters.last_error = reason
                self._counters.state = StreamState.RECONNECTING
            limit = self._settings.max_reconnect_attempts
            if limit and failures >= limit:
                # A caller can still tell "nobody answers in time" from "refused".
                kind = SourceTimeout if isinstance(error, SourceTimeout) else SourceError
                raise kind(
                    f"gave up on {self.target.url} after {failures} attempts without audio: "
                    f"{reason}"
                ) from error
            delay = reconnect_delay(self._settings.backoff, failures, self._rng) if failures else 0
            log.warning(
                "stream %s: %s; reopening in %.2f s (attempt %d)",
                self.stream_id,
                reason,
                delay,
                failures + 1,
            )
            if delay and self._stop.wait(delay):
                return
            self._reconnected = self._audio_end is not None

    def _read_connection(self) -> None:
        """Open once and read until the end, an error, a stall or a detach."""
        target = self.target
        self._connection_samples = 0
        self._stamped_samples = 0
        self._anchor = None
        self._anchor_estimate = float("inf")
        self._first_audio_at = None
        self._media_next = None
        self._skipped = 0.0
        try:
            container = av.open(
                target.url,
                format=target.format,
                options=dict(target.options),
                timeout=(self._settings.open_timeout, self._read_timeout),
            )
        except av.error.FFmpegError as exc:
            raise _converted(exc, f"cannot open {target.url}") from exc
        with container:
            if not container.streams.audio:
                raise SourceError(f"{target.url} has no audio stream")
            stream = container.streams.audio[0]
            with self._lock:
                self._counters.connects += 1
                self._counters.state = StreamState.ONLINE
            resampler = MonoResampler()
            # demux() is a generator: closing it before the container frees its packet buffer.
            packets = cast("Generator[Packet[AudioStream], None, None]", container.demux(stream))
            last_audio = time.monotonic()
            flushed = False
            try:
                for packet in packets:
                    if self._stop.is_set():
                        break
                    flushed = packet.size == 0  # demux ends with one empty packet per stream
                    frames = self._decode(stream, packet)
                    if frames:
                        for frame in frames:
                            self._resample(resampler, frame)
                        last_audio = time.monotonic()
                    elif time.monotonic() - last_audio > self._settings.stall_timeout:
                        self._count_stall()
                        raise SourceTimeout(
                            f"{target.url}: no audio for {self._settings.stall_timeout:g} s"
                        )
            except av.error.ExitError as exc:
                # Our interrupt: a read blocked longer than the read (or stall) timeout.
                self._count_stall()
                raise SourceTimeout(
                    f"{target.url}: no data for {self._read_timeout:g} s (read timeout)"
                ) from exc
            except av.error.FFmpegError as exc:
                raise _converted(exc, f"reading {target.url} failed") from exc
            finally:
                packets.close()
                # Nothing heard is dropped: drain the decoder and the resampler whatever ended
                # the connection, then deliver the last partial batch.
                if not flushed:
                    for frame in self._decode(stream, None):
                        self._resample(resampler, frame)
                self._add(resampler.flush())
                self._send_batch()

    def _resample(self, resampler: MonoResampler, frame: AudioFrame) -> None:
        self._follow_timeline(frame)
        changes = resampler.changes
        pcm = resampler.feed(frame)
        if resampler.changes != changes:
            # A new sample rate or layout is a break in the media timeline, not a loss.
            self._batch_discontinuity = True
            with self._lock:
                self._counters.format_changes += 1
        self._add(pcm)

    def _decode(self, stream: AudioStream, packet: Packet[AudioStream] | None) -> list[AudioFrame]:
        try:
            return stream.decode(packet)
        except av.error.FFmpegError as exc:
            if packet is None:  # draining a decoder that is already drained or broken
                return []
            # A packet the decoder rejects is skipped, whatever the reason it gives (garbage
            # in an AAC stream comes back as InvalidDataError or as EPERM). A decoder that
            # rejects everything brings no audio, which the stall timeout turns into a reopen.
            log.debug("stream %s: skipped a corrupt packet: %s", self.stream_id, exc)
            with self._lock:
                self._counters.corrupt_packets += 1
            return []

    def _follow_timeline(self, frame: AudioFrame) -> None:
        """Notice audio the demuxer skipped inside one connection, from a jump in the media
        timestamps: HLS drops segments it could not fetch, or that slid out of the playlist
        while the reader was behind. Stamps are by sample count, so the skipped time must be
        added to them, and it is a gap like a reconnect's."""
        at = frame.time
        if at is None or not frame.sample_rate:
            return
        expected, self._media_next = self._media_next, at + frame.samples / frame.sample_rate
        if expected is None or abs(at - expected) < _TIMELINE_TOLERANCE:
            return
        jump = at - expected
        if self.live and self._anchor is not None and 0 < jump <= _MAX_SKIPPED:
            self._send_batch()  # the audio before the jump keeps its own stamps
            self._skipped += jump
        # Otherwise the timeline was reset (an HLS discontinuity, a file's odd timestamps):
        # a break worth flagging, but not audio we know to be lost.
        self._batch_discontinuity = True

    def _count_stall(self) -> None:
        with self._lock:
            self._counters.stalls += 1

    def _add(self, pieces: list[Pcm]) -> None:
        for pcm in pieces:
            self._batch.append(pcm)
            self._batch_samples += len(pcm)
            self._connection_samples += len(pcm)
        if not pieces or not self.live:
            if self._batch_samples >= CHUNK_SAMPLES:
                self._send_batch()
            return
        if self._anchor is None:
            now = time.time()
            if self._first_audio_at is None:
                self._first_audio_at = now
            self._anchor_estimate = min(
                self._anchor_estimate, now - self._connection_samples / SAMPLE_RATE
            )
            if now - self._first_audio_at < _SETTLE_SECONDS:
                return
        if self._batch_samples >= CHUNK_SAMPLES:
            self._send_batch()

    def _send_batch(self) -> None:
        if not self._batch_samples:
            return
        samples = np.concatenate(self._batch)  # a copy: the frames' buffers can go
        self._batch = []
        self._batch_samples = 0
        gap = 0.0
        discontinuity, self._batch_discontinuity = self._batch_discontinuity, False
        if self.live:
            if self._anchor is None:
                self._anchor = self._anchor_estimate
                if self._audio_end is not None:
                    # Audio heard twice (an HLS reopen replays recent segments) must not be
                    # stamped before what was already delivered: keep the clock monotone.
                    gap = max(0.0, self._anchor - self._audio_end)
                    self._anchor = max(self._anchor, self._audio_end)
                discontinuity = discontinuity or self._reconnected
                self._reconnected = False
            if self._skipped:
                gap += self._skipped
                self._anchor += self._skipped
                self._skipped = 0.0
            start = self._anchor + self._stamped_samples / SAMPLE_RATE
            wall_start = datetime.fromtimestamp(start, UTC)
            self._stamped_samples += len(samples)
            self._audio_end = start + len(samples) / SAMPLE_RATE
        else:
            heard = self._counters.heard_samples
            wall_start = self.attached_at + timedelta(seconds=heard / SAMPLE_RATE)
        chunk = AudioChunk(
            samples=samples, wall_start=wall_start, gap_before=gap, discontinuity=discontinuity
        )
        if gap > 0:
            assert self._audio_end is not None
            with self._lock:
                self._counters.gaps.append(
                    Gap(at=datetime.fromtimestamp(start - gap, UTC), seconds=gap)
                )
            log.warning("stream %s: %.2f s of audio not heard", self.stream_id, gap)
        if self._hand_over(chunk):
            with self._lock:
                self._counters.heard_samples += len(samples)
                self._counters.failed_attempts = 0

    def _hand_over(self, item: AudioChunk | BaseException | _End) -> bool:
        """Queue an item for the consumer, waiting for room for audio; False if closing."""
        if isinstance(item, AudioChunk):
            while not self._slots.acquire(timeout=_HAND_OFF_POLL):
                if self._closing.is_set():
                    return False
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody will read it
            return False
        return True


def _converted(exc: av.error.FFmpegError, what: str) -> SourceError:
    """A PyAV error as ours: timeouts (our interrupt or FFmpeg's own) as SourceTimeout."""
    if isinstance(exc, av.error.ExitError | av.error.TimeoutError):
        return SourceTimeout(f"{what}: timed out ({exc})")
    return SourceError(f"{what}: {exc}")
