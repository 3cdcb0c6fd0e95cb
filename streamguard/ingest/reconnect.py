"""Connection after connection: a file is read once; a live source is reopened until detached.

A live source whose connection ends (FFmpeg reports a dropped connection as an end of
stream), errors or stalls is reopened after a delay from the ingest config's
:class:`~streamguard.core.backoff.Backoff`, counted in consecutive attempts that brought no
audio: none after a connection that did. With ``IngestConfig.max_reconnect_attempts`` set,
that many attempts without audio give the source up. A file's error ends it at once.

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
from streamguard.ingest.protocols import SourceTarget
from streamguard.ingest.reader import Connection
from streamguard.ingest.stats import Tally
from streamguard.ingest.timeline import Timeline

__all__ = ["ReconnectLoop"]

log = logging.getLogger(__name__)


class ReconnectLoop:
    """Reads a source until it ends, is stopped, or is given up. Blocking: reader thread only.

    Everything decoded goes to ``timeline``; how it went goes to ``tally``. :meth:`run`
    raises :class:`SourceError` when a file cannot be read or a live source is given up.
    """

    def __init__(
        self,
        target: SourceTarget,
        settings: IngestConfig,
        stream_id: str,
        *,
        live: bool,
        timeline: Timeline,
        tally: Tally,
        stop: threading.Event,
        rng: random.Random,
    ) -> None:
        self._target = target
        self._settings = settings
        self._stream_id = stream_id
        self._live = live
        self._timeline = timeline
        self._tally = tally
        self._stop = stop
        self._rng = rng
        self._backoff = Backoff.of(settings.backoff)
        # A socket that stays open and sends nothing must be noticed within the stall timeout.
        self._read_timeout = min(settings.read_timeout, settings.stall_timeout)

    def run(self) -> None:
        """Read until the end of a file, a detach, or giving up on a live source."""
        failures = 0
        while not self._stop.is_set():
            error: SourceError | None = None
            try:
                self._read_connection()
            except SourceError as exc:
                if not self._live:
                    raise
                error = exc
            if self._stop.is_set() or not self._live:
                return
            failures = 0 if self._timeline.connection_samples else failures + 1
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
            delay = self._backoff.delay(failures, self._rng) if failures else 0.0
            log.warning(
                "stream %s: %s; reopening in %.2f s (attempt %d)",
                self._stream_id,
                reason,
                delay,
                failures + 1,
            )
            if delay and self._stop.wait(delay):
                return

    def _read_connection(self) -> None:
        """Open once and read until the end, an error, a stall or a stop."""
        timeline, stall_timeout = self._timeline, self._settings.stall_timeout
        timeline.connect()
        with Connection(
            self._target,
            self._stream_id,
            self._tally,
            open_timeout=self._settings.open_timeout,
            read_timeout=self._read_timeout,
        ) as connection:
            last_audio = time.monotonic()
            try:
                while (packet := connection.next_packet()) is not None:
                    if self._stop.is_set():
                        break
                    heard = connection.decode(packet)
                    for frame in heard:
                        timeline.add(frame)
                    if heard:
                        last_audio = time.monotonic()
                    elif time.monotonic() - last_audio > stall_timeout:
                        self._tally.stall()
                        raise SourceTimeout(f"{self._target.url}: no audio for {stall_timeout:g} s")
            finally:
                # Nothing heard is dropped: whatever ended the connection, deliver what the
                # decoder and resampler still hold, then the last partial chunk.
                for frame in connection.drain():
                    timeline.add(frame)
                timeline.flush()
