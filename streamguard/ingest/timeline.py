"""A source's clock: heard audio batched into chunks of about a second, stamped in UTC.

A file's audio is stamped by its media offset from the attach time. Live audio is stamped
from the wall clock when it was received: each connection gets an anchor (the wall time of
its first sample) and its samples are counted from there, never from the stream's own
timestamps, which jump at reconnects and HLS discontinuities.

Where the room's audio was not heard (between two connections, or segments an HLS demuxer
skipped inside one), the next chunk carries ``gap_before`` and ``discontinuity``, and the gap
is recorded in the source's stats. The stamps never go backwards, and live stamps never run
ahead of the wall clock: audio that arrives faster than real time (a recording served as if
live, audio replayed after a reopen and stamped after what was already delivered) is held
back until the clock reaches its stamps, as a listener hears it. Only a detach cuts that
wait short, for the last chunk at most.

A connection with video and no audio (``video_only``) has no audio to place its pictures
by: their offsets come from the video's own timestamps (from the connection's first
picture, after the offsets of the connections before), and they are dated at once: a live
one by the wall clock when decoded, a recording's by its offset from the attach time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from streamguard.core.chunk import SAMPLE_RATE, AudioChunk, Pcm
from streamguard.ingest.resampling import Heard
from streamguard.ingest.stats import Gap, Tally

__all__ = ["CHUNK_SAMPLES", "Timeline"]

log = logging.getLogger(__name__)

CHUNK_SAMPLES = SAMPLE_RATE
"""A chunk carries about one second of audio: few hand-offs, no latency a segment notices."""

_SETTLE_SECONDS = 1.0
# A live connection often starts with a burst of buffered audio (Icecast's burst-on-connect,
# the last three HLS segments). Its wall-clock anchor is the earliest "receive time minus
# audio heard so far" seen during this first second, which stays close to the truth whichever
# way the audio arrives.

_TIMELINE_TOLERANCE = 0.5  # media timestamps may wobble by this much without meaning a break
_MAX_SKIPPED = 60.0  # a forward jump larger than this is a reset timeline, not lost audio
_PLACE_SPREAD = 5.0  # a picture is placed at most this far from the audio decoded with it


class Timeline:
    """Turns one source's heard audio into stamped :class:`AudioChunk` s, handed to ``deliver``.

    Reader thread only. Call :meth:`connect` as each connection starts, :meth:`add` for
    everything it decodes, and :meth:`flush` when it ends. ``live`` may be settled by the
    first connection, before it adds anything. ``wait(seconds)`` holds live audio back
    until the wall clock reaches its stamps and returns true to stop waiting (a stop event's
    ``wait``).
    """

    def __init__(
        self,
        stream_id: str,
        *,
        live: bool,
        attached_at: datetime,
        tally: Tally,
        deliver: Callable[[AudioChunk], None],
        wait: Callable[[float], bool | None] = time.sleep,
    ) -> None:
        self._stream_id = stream_id
        self.live = live
        self._wait = wait
        self._attached_at = attached_at
        self._tally = tally
        self._deliver = deliver
        self._batch: list[Pcm] = []
        self._batch_samples = 0
        self._batch_discontinuity = False
        self._file_samples = 0  # a file's samples stamped so far: the next chunk's offset
        self._heard_samples = 0  # every sample added since attach (the segments' media clock)
        self._held: list[tuple[int, Callable[[datetime], None]]] = []  # pictures to date
        self._last_stamp: tuple[int, datetime] | None = None  # a connection sample and its time
        self._audio_end: float | None = None  # wall time just after the last stamped sample
        # Per connection, reset by connect():
        self._anchor: float | None = None  # wall time (epoch s) of the connection's sample 0
        self._anchor_estimate = float("inf")
        self._first_audio_at: float | None = None
        self._connection_samples = 0  # samples decoded on this connection
        self._stamped_samples = 0  # of those, already stamped into delivered chunks
        self._reconnected = False
        self._media_next: float | None = None  # media time the next decoded frame should have
        self._skipped = 0.0  # media seconds the demuxer skipped, not yet in a chunk's gap
        self.video_only = False
        """The connection has video and no audio (set by the reader once it is open)."""
        self.connection_pictures = 0  # pictures decoded on a video-only connection
        self._video_first: float | None = None  # its first picture's media time
        self._video_base = 0.0  # the offset its first picture gets
        self._video_last = 0.0  # the latest offset given to a picture

    @property
    def connection_samples(self) -> int:
        """Samples decoded on the current connection (zero: it brought no audio)."""
        return self._connection_samples

    def connect(self) -> None:
        """A connection starts: its audio is anchored afresh, after whatever came before."""
        self._connection_samples = 0
        self._stamped_samples = 0
        self._anchor = None
        self._anchor_estimate = float("inf")
        self._first_audio_at = None
        self._media_next = None
        self._skipped = 0.0
        self._last_stamp = None
        self.video_only = False
        self.connection_pictures = 0
        self._video_first = None
        self._video_base = self._video_last
        # Audio was heard before this connection: its first chunk marks the break.
        self._reconnected = self._audio_end is not None

    def add(self, heard: Heard) -> None:
        """Decoded audio (a batch of frames, see :class:`Heard`), in order."""
        self._follow(heard.media_start, heard.media_seconds)
        if heard.format_changed:
            # A new sample rate or layout is a break in the media timeline, not a loss.
            self._batch_discontinuity = True
        self._add(heard.pcm)

    def flush(self) -> None:
        """The connection ended: deliver the last partial chunk, then the pictures still held
        (after the last audio, dated from it; on a connection that brought no audio, now)."""
        self._send_batch()
        if self._held:
            first, start = self._last_stamp or (0, self._fallback_start())
            self._release(first, start, None)

    def _fallback_start(self) -> datetime:
        """When this connection's sample 0 was heard, with no audio stamped to tell."""
        if self.live:
            return datetime.now(UTC) - timedelta(seconds=self._connection_samples / SAMPLE_RATE)
        return self._attached_at + timedelta(seconds=self._file_samples / SAMPLE_RATE)

    def offset_of(self, media_time: float | None) -> float:
        """Where a picture shown at ``media_time`` (the stream's own clock) sits on the audio's
        timeline: seconds of audio heard since attach (``Segment.media_start``'s clock). Its
        distance from the audio decoded so far comes from the media timestamps, within
        :data:`_PLACE_SPREAD` seconds. Without audio, from the video's timestamps."""
        if self.video_only:
            self.connection_pictures += 1
            return self._video_offset(media_time)
        return max(0.0, self._heard_samples / SAMPLE_RATE + self._ahead(media_time))

    def hold(self, media_time: float | None, then: Callable[[datetime], None]) -> None:
        """Call ``then`` with the UTC time of a picture shown at ``media_time`` once the audio
        around it is stamped (and, live, once the clock has reached it): pictures are dated by
        the same anchor and sample count as the audio, and handed on no earlier."""
        if self.video_only:
            offset = self._video_offset(media_time)
            live = datetime.now(UTC)
            then(live if self.live else self._attached_at + timedelta(seconds=offset))
            return
        position = self._connection_samples + round(self._ahead(media_time) * SAMPLE_RATE)
        self._held.append((max(0, position), then))

    def _video_offset(self, media_time: float | None) -> float:
        """A picture's offset on a video-only connection (never before the last one's)."""
        if media_time is None:
            return self._video_last
        if self._video_first is None:
            self._video_first = media_time
        offset = self._video_base + max(0.0, media_time - self._video_first)
        self._video_last = max(self._video_last, offset)
        return self._video_last

    def _ahead(self, media_time: float | None) -> float:
        if media_time is None or self._media_next is None:
            return 0.0
        return max(-_PLACE_SPREAD, min(_PLACE_SPREAD, media_time - self._media_next))

    def _release(self, first: int, start: datetime, until: int | None) -> None:
        """Date and hand on the held pictures before connection sample ``until`` (all with
        ``None``), given that connection sample ``first`` was heard at ``start``."""
        keep = []
        for position, then in self._held:
            if until is not None and position >= until:
                keep.append((position, then))
            else:
                then(start + timedelta(seconds=(position - first) / SAMPLE_RATE))
        self._held = keep

    def _follow(self, at: float | None, seconds: float) -> None:
        """Notice audio the demuxer skipped inside one connection, from a jump in the media
        timestamps: HLS drops segments it could not fetch, or that slid out of the playlist
        while the reader was behind. Stamps are by sample count, so the skipped time must be
        added to them, and it is a gap like a reconnect's."""
        if at is None:
            return
        expected, self._media_next = self._media_next, at + seconds
        if expected is None or abs(at - expected) < _TIMELINE_TOLERANCE:
            return
        jump = at - expected
        if self.live and self._anchor is not None and 0 < jump <= _MAX_SKIPPED:
            self._send_batch()  # the audio before the jump keeps its own stamps
            self._skipped += jump
        # Otherwise the timeline was reset (an HLS discontinuity, a file's odd timestamps):
        # a break worth flagging, but not audio we know to be lost.
        self._batch_discontinuity = True

    def _add(self, pieces: list[Pcm]) -> None:
        for pcm in pieces:
            self._batch.append(pcm)
            self._batch_samples += len(pcm)
            self._connection_samples += len(pcm)
            self._heard_samples += len(pcm)
        if pieces and self.live and self._anchor is None:
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
        discontinuity, self._batch_discontinuity = self._batch_discontinuity, False
        gap = 0.0
        if self.live:
            start, gap, discontinuity = self._stamp_live(len(samples), discontinuity)
            end = start + len(samples) / SAMPLE_RATE
            while (ahead := end - time.time()) > 0 and not self._wait(ahead):
                pass  # woken early (or by a clock step): wait for the rest
            wall_start = datetime.fromtimestamp(start, UTC)
            if gap > 0:
                self._tally.gap(Gap(at=datetime.fromtimestamp(start - gap, UTC), seconds=gap))
                log.warning("stream %s: %.2f s of audio not heard", self._stream_id, gap)
        else:
            wall_start = self._attached_at + self._file_offset(len(samples))
        self._deliver(
            AudioChunk(
                samples=samples, wall_start=wall_start, gap_before=gap, discontinuity=discontinuity
            )
        )
        first = self._connection_samples - len(samples)  # the chunk's first connection sample
        self._last_stamp = (first, wall_start)
        if self._held:
            self._release(first, wall_start, self._connection_samples)

    def _file_offset(self, samples: int) -> timedelta:
        offset = timedelta(seconds=self._file_samples / SAMPLE_RATE)
        self._file_samples += samples
        return offset

    def _stamp_live(self, samples: int, discontinuity: bool) -> tuple[float, float, bool]:
        """Where ``samples`` of live audio start on the wall clock (epoch seconds), the gap
        before them, and whether they follow a break."""
        gap = 0.0
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
        self._stamped_samples += samples
        self._audio_end = start + samples / SAMPLE_RATE
        return start, gap, discontinuity
