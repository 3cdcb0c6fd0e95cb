"""A stream's source: one PyAV reader on its own thread, handing 16 kHz mono audio to asyncio.

::

    reader thread  stream[ID].source                                        event loop
    ReconnectLoop ─▶ Connection (open, demux, decode, resample) ─▶ Timeline (stamp, batch)
                  ─▶ (bounded hand-off) ─▶ async for chunk

The stages live in their own modules: :mod:`~streamguard.ingest.reader` (PyAV),
:mod:`~streamguard.ingest.timeline` (the wall clock, gaps), :mod:`~streamguard.ingest.reconnect`
(stalls, reconnects, backoff) and :mod:`~streamguard.ingest.stats`. This one owns the thread
and the hand-off between it and the event loop.

Why a dedicated, named ``threading.Thread`` rather than ``asyncio.to_thread``: a live reader
blocks for the life of the stream, and ``to_thread`` borrows the loop's default executor,
which has ``min(32, cores + 4)`` workers (6 on two cores). A few live streams would starve
every other ``to_thread`` caller (the database, the encoder). A thread of its own per stream
costs one OS thread and is named after the stream in ``py-spy`` and in logs.

PyAV 18 offers no interrupt callback of our own (its ``timeout`` installs FFmpeg's), so
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
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType

from streamguard.config.frames import FramesConfig
from streamguard.config.ingest import IngestConfig
from streamguard.core.chunk import AudioChunk
from streamguard.core.errors import SourceError
from streamguard.core.frame import Frame
from streamguard.ingest.frames import FrameSampler, FrameStats
from streamguard.ingest.guard import AddressGuard
from streamguard.ingest.protocols import SourceTarget, resolve_source
from streamguard.ingest.reconnect import ReconnectLoop
from streamguard.ingest.stats import SourceStats, Tally
from streamguard.ingest.timeline import Timeline

__all__ = ["FRAME_QUEUE", "Source"]

log = logging.getLogger(__name__)

_HAND_OFF_POLL = 0.2  # seconds between checks of the close flag while the hand-off is full
FRAME_QUEUE = 4
"""Frames waiting for the consumer (up to ~700 KB each at 640x360); more are dropped (and
counted), never the audio."""


class _End:
    """The reader is done and everything it heard was handed over."""


_END = _End()


class Source:
    """Reads one stream's audio until it ends (a file) or is detached (a live stream).

    Use it as ``async with Source(url, settings, stream_id) as source: async for chunk in
    source: ...``. The URL (or local path) is checked against the protocol allow-list at
    construction and :class:`~streamguard.core.errors.ProtocolNotAllowed` is raised at once
    (:class:`~streamguard.ingest.addresses.AddressNotAllowed` for a host that is a denied IP
    address). Every connection the source makes is held to the address policy
    (:mod:`~streamguard.ingest.guard`).

    A live source that ends, errors or stalls is reopened with capped, jittered exponential
    backoff; the next chunk then carries ``gap_before`` (wall time not covered by heard audio)
    and ``discontinuity``. With ``IngestConfig.max_reconnect_attempts`` set, the iterator
    raises :class:`~streamguard.core.errors.SourceError` after that many consecutive opens without
    audio. A recording (a file, an HTTP resource with a size) ends at its end; one that
    cannot be opened, or brings no audio, raises.

    :meth:`detach` stops reading; the iterator ends after the last decoded audio has been
    delivered. Leaving the ``async with`` block without draining discards what is undelivered
    and waits for the reader thread to finish.

    ``live`` overrides what the source says of itself (``None``, the default: local files
    are recordings, RTMP and RTSP live, HTTP and HLS whatever their first connection tells).
    ``attached_at`` stamps a recording's audio (attach time plus media offset); live audio is
    stamped from the wall clock when it was received, never ahead of it. ``rng`` draws the
    reconnect delays' jitter.

    With ``frames`` (enabled), a stream that has video is sampled too (see
    :mod:`~streamguard.ingest.frames`): iterate :meth:`frames` beside the audio. Frames the
    consumer has not taken when :data:`FRAME_QUEUE` are waiting are dropped and counted
    (``frames_dropped``): they are samples, and never hold the audio back. A stream with
    video and no audio is then read for its frames alone: no chunks, ``stats.audio_track``
    false, and its frames put it online.
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
        frames: FramesConfig | None = None,
    ) -> None:
        target = resolve_source(source, settings)
        self.target: SourceTarget = target if live is None else replace(target, live=live)
        self.stream_id = stream_id
        self.attached_at = attached_at or datetime.now(UTC)
        self._tally = Tally()
        self._stop = threading.Event()  # detach: finish delivering, then end
        self._closing = threading.Event()  # leaving the context: stop waiting on the consumer
        self._slots = threading.Semaphore(settings.queue_chunks)
        self._queue: asyncio.Queue[AudioChunk | BaseException | _End] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None
        self._ended = False
        self._guard = AddressGuard(self.target, settings, stream_id)
        timeline = Timeline(
            stream_id,
            live=self.target.live is not False,  # settled by the first connection if None
            attached_at=self.attached_at,
            tally=self._tally,
            deliver=self._deliver,
            wait=self._stop.wait,
        )
        self._frames: asyncio.Queue[Frame | None] = asyncio.Queue(FRAME_QUEUE + 1)
        self._sampler = (
            FrameSampler(
                stream_id,
                self.attached_at,
                frames,
                clock=timeline,
                deliver=self._deliver_frame,
            )
            if frames is not None and frames.enabled
            else None
        )
        self.frames_dropped = 0
        self._reader = ReconnectLoop(
            self.target,
            settings,
            stream_id,
            live=self.target.live,
            timeline=timeline,
            tally=self._tally,
            stop=self._stop,
            rng=rng or random.Random(),
            guard=self._guard,
            frames=self._sampler,
        )

    # -- the asyncio side -------------------------------------------------------------------

    async def __aenter__(self) -> Source:
        await self._guard.__aenter__()  # before the reader: its connections go through it
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
        await self._guard.__aexit__(exc_type, exc, tb)

    @property
    def live(self) -> bool | None:
        """Whether the source is live; ``None`` until its first connection told."""
        return self._reader.live

    def detach(self) -> None:
        """Stop reading; the iterator ends once everything already decoded is delivered."""
        self._stop.set()

    @property
    def stats(self) -> SourceStats:
        """How reading has gone so far (safe to call from the event loop at any time)."""
        return self._tally.snapshot()

    @property
    def frame_stats(self) -> FrameStats | None:
        """How frame sampling has gone (``None`` when frames are not sampled)."""
        return None if self._sampler is None else self._sampler.stats

    async def frames(self) -> AsyncIterator[Frame]:
        """The frames taken from the stream's video, until the reader ends (none without
        video, or when frames are not sampled)."""
        if self._finished is None:
            raise RuntimeError("iterate a Source's frames inside 'async with'")
        while (frame := await self._frames.get()) is not None:
            yield frame

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
            self._reader.run()
        except SourceError as exc:
            final = exc
        except Exception as exc:  # a bug: hand it to the consumer, never lose it in a thread
            log.exception("stream %s: reader failed", self.stream_id)
            final = exc
        finally:
            self._tally.ended()
            self._hand_over(final)
            self._deliver_frame(None)
            assert self._loop is not None
            assert self._finished is not None
            finished = self._finished

            def done() -> None:
                if not finished.done():
                    finished.set_result(None)

            # A closed loop has nobody left waiting for the reader.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(done)

    def _deliver_frame(self, frame: Frame | None) -> None:
        """Queue a frame (``None``: the last one was) for the consumer, or drop it."""
        assert self._loop is not None
        if frame is not None and self._tally.snapshot().audio_track is False:
            self._tally.saw_pictures()  # a source without audio is online by its frames

        def put() -> None:
            if frame is not None and self._frames.qsize() >= FRAME_QUEUE:
                self.frames_dropped += 1
            else:
                self._frames.put_nowait(frame)

        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to read it
            self._loop.call_soon_threadsafe(put)

    def _deliver(self, chunk: AudioChunk) -> None:
        # Counted before it is queued: the consumer reading the stats when the chunk
        # arrives must already see the source online, with no stale error.
        self._hand_over(chunk, before=lambda: self._tally.heard(len(chunk.samples)))

    def _hand_over(
        self, item: AudioChunk | BaseException | _End, before: Callable[[], None] | None = None
    ) -> bool:
        """Queue an item for the consumer, waiting for room for audio; False if closing.
        ``before`` runs just before the item is queued (audio: once it has room)."""
        if isinstance(item, AudioChunk):
            while not self._slots.acquire(timeout=_HAND_OFF_POLL):
                if self._closing.is_set():
                    return False
        assert self._loop is not None
        if self._loop.is_closed():  # nobody will read it
            return False
        if before is not None:
            before()
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop closed meanwhile: nobody will read it
            return False
        return True
