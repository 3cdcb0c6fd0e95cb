"""Connection after connection: a recording is read once; a live source is reopened until
detached.

Whether a source is live is the stream's ``live`` setting, or, left to ``auto``, what its
first connection says (:attr:`Connection.looks_live
<streamguard.ingest.reader.Connection.looks_live>`): an HTTP resource with a size and no ICY
headers, or a finished HLS playlist, is a recording. A recording is read once, and an error
ends it at once; one that ends without any audio decoded is an error too (random bytes
named ``.mp3`` are not a silent success). Attempts that fail before any connection told
count as live: a 404 is retried like a refused connection.

A live source whose connection ends (FFmpeg reports a dropped connection as an end of
stream), errors or stalls is reopened after a delay from the ingest config's
:class:`~streamguard.core.backoff.Backoff`: the first step of the schedule after a
connection that brought audio, then one step further for each consecutive attempt that
brought none. Never at once: a server that ends every connection must not be hammered, nor
its audio read again and again. With ``IngestConfig.max_reconnect_attempts`` set, that many
attempts without audio give the source up.

A stall is a connection that stays open but brings no audio: packets the decoder rejects,
or (caught by the read timeout, which is never longer than the stall timeout) no data at all.
Either is noticed within the stall timeout and treated like a dropped connection.

The stop flag (:meth:`Source.detach <streamguard.ingest.source.Source.detach>`) takes effect
at the next packet: within the read bound while reading, within the open timeout while
connecting, at once while waiting to reconnect.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from streamguard.config.ingest import IngestConfig
from streamguard.core.backoff import Backoff
from streamguard.core.errors import SourceError, SourceTimeout
from streamguard.ingest.frames import FrameSampler
from streamguard.ingest.guard import AddressGuard
from streamguard.ingest.protocols import SourceTarget
from streamguard.ingest.reader import Connection
from streamguard.ingest.stats import Tally
from streamguard.ingest.timeline import Timeline

__all__ = ["ReconnectLoop"]

log = logging.getLogger(__name__)


class ReconnectLoop:
    """Reads a source until it ends, is stopped, or is given up. Blocking: reader thread only.

    Everything decoded goes to ``timeline`` (pictures, with ``frames``, to the sampler); how
    it went goes to ``tally``. :meth:`run`
    raises :class:`SourceError` when a recording cannot be read or brings no audio, or a
    live source is given up. ``live`` is ``None`` to let the first connection tell.
    Every connection is made as ``guard`` routes it, and its errors told as it explains them.
    """

    def __init__(
        self,
        target: SourceTarget,
        settings: IngestConfig,
        stream_id: str,
        *,
        live: bool | None,
        timeline: Timeline,
        tally: Tally,
        stop: threading.Event,
        rng: random.Random,
        guard: AddressGuard,
        frames: FrameSampler | None = None,
    ) -> None:
        self._target = target
        self._guard = guard
        self._frames = frames
        self._settings = settings
        self._stream_id = stream_id
        self.live = live
        """Whether the source is live; ``None`` until a connection told."""
        self._timeline = timeline
        self._tally = tally
        self._stop = stop
        self._rng = rng
        self._backoff = Backoff.of(settings.backoff)
        # A socket that stays open and sends nothing must be noticed within the stall timeout.
        self._read_timeout = min(settings.read_timeout, settings.stall_timeout)

    def run(self) -> None:
        """Read until the end of a recording, a detach, or giving up on a live source."""
        failures = 0
        while not self._stop.is_set():
            error: SourceError | None = None
            try:
                self._read_connection()
            except SourceError as exc:
                if self.live is False:
                    raise
                error = exc
            if self._stop.is_set():
                return
            if self.live is False:
                self._require_audio()
                return
            heard = self._timeline.connection_samples or self._timeline.connection_pictures
            failures = 0 if heard else failures + 1
            reason = str(error) if error else "the source ended"
            self._tally.reconnecting(failures, reason)
            limit = self._settings.max_reconnect_attempts
            if limit and failures >= limit:
                # A caller can still tell "nobody answers in time" from "refused".
                kind = SourceTimeout if isinstance(error, SourceTimeout) else SourceError
                raise kind(
                    f"gave up on {self._target.url} after {failures} attempts without audio: "
                    f"{reason}"
                ) from error
            delay = self._backoff.delay(max(1, failures), self._rng)
            log.warning(
                "stream %s: %s; reopening in %.2f s (attempt %d)",
                self._stream_id,
                reason,
                delay,
                failures + 1,
            )
            if self._stop.wait(delay):
                return

    def _require_audio(self) -> None:
        """A recording read to its end must have brought audio (or, without an audio
        stream, pictures)."""
        if self._timeline.connection_samples or self._timeline.connection_pictures:
            return
        corrupt = self._tally.snapshot().corrupt_packets
        raise SourceError(
            f"no audio was decoded from {self._target.url} "
            f"({corrupt} packets could not be decoded): is it an audio file?"
        )

    def _read_connection(self) -> None:
        """Open once and read until the end, an error, a stall or a stop."""
        try:
            self._read_routed(self._guard.route())
            # A denial FFmpeg shrugged off (an HLS segment it skipped) still fails the source.
            self._guard.check()
        except SourceError as exc:
            told = self._guard.explain(exc)
            if told is exc:
                raise
            raise told from exc

    def _read_routed(self, target: SourceTarget) -> None:
        timeline, stall_timeout = self._timeline, self._settings.stall_timeout
        timeline.connect()
        with Connection(
            target,
            self._stream_id,
            self._tally,
            open_timeout=self._settings.open_timeout,
            read_timeout=self._read_timeout,
            hear=timeline.add,
            frames=self._frames,
        ) as connection:
            if self.live is None:
                self.live = timeline.live = connection.looks_live
            timeline.video_only = not connection.has_audio
            last_audio, frames = time.monotonic(), 0
            try:
                while (packet := connection.next_packet()) is not None:
                    self._guard.check()
                    if self._stop.is_set():
                        break
                    connection.decode(packet)
                    # Without audio, video packets are what keeps the connection alive.
                    if connection.audio_frames != frames or timeline.video_only:
                        last_audio, frames = time.monotonic(), connection.audio_frames
                    elif time.monotonic() - last_audio > stall_timeout:
                        self._tally.stall()
                        raise SourceTimeout(f"{self._target.url}: no audio for {stall_timeout:g} s")
            finally:
                # Nothing heard is dropped: whatever ended the connection, deliver what the
                # decoder and resampler still hold, then the last partial chunk.
                connection.drain()
                timeline.flush()
