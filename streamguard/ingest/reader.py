"""PyAV, one connection at a time: open, demux, decode packet by packet, resample to 16 kHz mono.

Everything here blocks (FFmpeg network reads, decoding) and runs on the source's reader
thread, never on the event loop. Every blocking step is bounded: ``av.open(timeout=(open,
read))`` bounds the open/probe and each packet read. A container is never closed from another
thread (unsafe while a read blocks in FFmpeg); the thread that opened it closes it.

A packet the decoder rejects is skipped and counted, whatever reason it gives; a mid-stream
change of sample rate or layout rebuilds the resampler without losing what it held. PyAV's
errors become :class:`~streamguard.core.errors.SourceError` here, timeouts
:class:`~streamguard.core.errors.SourceTimeout`, with a plain message: FFmpeg's own error
numbers (``[Errno 875574520] Server returned 404 Not Found``) mean nothing to a reader.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Generator
from types import TracebackType
from typing import cast

import av
import av.error
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.packet import Packet
from av.video.stream import VideoStream

from streamguard.core.errors import SourceError, SourceTimeout
from streamguard.ingest.frames import FrameSampler
from streamguard.ingest.protocols import SourceTarget
from streamguard.ingest.resampling import Heard, HeardBatches
from streamguard.ingest.stats import Tally

__all__ = ["MAX_PICTURE_BYTES", "MAX_PICTURE_PARTS", "Connection", "plain_error"]

log = logging.getLogger(__name__)

MAX_PICTURE_PARTS = 256
MAX_PICTURE_BYTES = 8 * 1024 * 1024
"""The most a picture's parts joined over RTSP may hold (count, bytes): a camera sends a few
slices of a few hundred kB; a source repeating one timestamp without end is not let grow
the reader's memory (its picture is dropped, counted as a corrupt packet)."""


class Connection:
    """One open source: its first audio stream, demuxed and decoded packet by packet.

    ``looks_live`` says whether what was opened behaves like a live stream (see
    :func:`_looks_live`); ``duration`` is the container's length in seconds, when it says.

    ``with Connection(target, stream_id, tally, open_timeout=…, read_timeout=…, hear=…) as c:``
    opens (or raises :class:`SourceError`); then :meth:`next_packet` and :meth:`decode` until
    the end, and :meth:`drain` for what the decoder and resampler still hold. The audio goes to
    ``hear`` in order, resampled in batches of about half a second
    (:mod:`~streamguard.ingest.resampling`); :attr:`audio_frames` counts the frames decoded.
    Blocking: reader thread only.

    With ``frames``, the first video stream (if there is one) is demuxed too and its pictures
    go to the sampler (keyframes only, unless it asks for all), each after the audio decoded
    before it has gone to ``hear``: pictures are placed against the audio heard so far. A
    source with video and no audio is then read for its video alone (``has_audio`` false);
    without ``frames`` it is refused.
    """

    def __init__(
        self,
        target: SourceTarget,
        stream_id: str,
        tally: Tally,
        *,
        open_timeout: float,
        read_timeout: float,
        hear: Callable[[Heard], None],
        frames: FrameSampler | None = None,
    ) -> None:
        self.url = target.url
        self._hear = hear
        self._stream_id = stream_id
        self._read_timeout = read_timeout
        self._tally = tally
        try:
            self._container = av.open(
                target.url,
                format=target.format,
                options=dict(target.options),
                timeout=(open_timeout, read_timeout),
            )
        except av.error.FFmpegError as exc:
            raise _converted(exc, f"cannot open {target.url}") from exc
        try:
            self._frames = frames
            self._video = self._video_stream(frames)
            self._video_drained = False
            self._held: list[Packet[VideoStream]] = []  # the parts of a picture not decoded yet
            self._held_bytes = 0
            self._overflowed: int | None = None  # the pts of a picture dropped as too large
            self.max_picture_parts = MAX_PICTURE_PARTS
            self.max_picture_bytes = MAX_PICTURE_BYTES
            audio = self._container.streams.audio
            if not audio and self._video is None:
                raise SourceError(f"{target.url} has no audio stream")
            # A stream with video and no audio is read for its frames alone.
            self._stream: AudioStream | None = audio[0] if audio else None
            wanted = [s for s in (self._stream, self._video) if s is not None]
            # demux() is a generator: closing it before the container frees its packet buffer.
            self._demux = cast(
                "Generator[Packet[AudioStream | VideoStream], None, None]",
                self._container.demux(wanted),
            )
            self._batches = HeardBatches(tally.format_change)
            self.audio_frames = 0
            self.looks_live = _looks_live(target, self._container)
            duration = self._container.duration
            self.duration = None if duration is None else duration / av.time_base
        except BaseException:
            self._container.close()
            raise
        self._flushed = False  # demux ends with one empty packet per stream, which flushes
        tally.connected(live=self.looks_live, duration=self.duration, audio=self.has_audio)

    @property
    def picture_held(self) -> tuple[int, int]:
        """The parts (count, bytes) of the picture being joined, not decoded yet."""
        return len(self._held), self._held_bytes

    @property
    def has_audio(self) -> bool:
        """Whether the source has an audio stream (else it is read for its video alone)."""
        return self._stream is not None

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._demux.close()
        self._container.close()

    def _video_stream(self, frames: FrameSampler | None) -> VideoStream | None:
        """The video stream to sample, set up to decode keyframes only if asked."""
        if frames is None or not self._container.streams.video:
            return None
        video = self._container.streams.video[0]
        if frames.keyframes_only:
            video.codec_context.skip_frame = "NONKEY"
        return video

    def next_packet(self) -> Packet[AudioStream | VideoStream] | None:
        """The next packet, or ``None`` at the end (on a live source, a dropped connection:
        FFmpeg reports both alike). Blocks for at most the read timeout."""
        try:
            return next(self._demux, None)
        except av.error.ExitError as exc:
            # Our interrupt: a read blocked longer than the read (or stall) timeout.
            self._tally.stall()
            raise SourceTimeout(
                f"{self.url}: no data for {self._read_timeout:g} s (read timeout)"
            ) from exc
        except av.error.FFmpegError as exc:
            raise _converted(exc, f"reading {self.url} failed") from exc

    def decode(self, packet: Packet[AudioStream | VideoStream]) -> None:
        """Decode one packet: its audio to the batches (and on to ``hear`` as they fill), its
        pictures to the frame sampler. A corrupt packet is skipped."""
        if self._video is not None and packet.stream_index == self._video.index:
            self._see(cast("Packet[VideoStream]", packet))
            return
        self._flushed = packet.size == 0
        try:
            for frame in self._decode(cast("Packet[AudioStream]", packet)):
                self.audio_frames += 1
                for heard in self._batches.add(frame):
                    self._hear(heard)
        except av.error.FFmpegError as exc:
            raise _converted(exc, f"reading {self.url} failed") from exc

    def drain(self) -> None:
        """Hear what the decoder and the resampler still hold, whatever ended the connection:
        nothing heard is dropped. The last is the resampler's tail, untimed."""
        self._demux.close()
        if self._video is not None:
            self._see(None)
        for frame in [] if self._flushed else self._decode(None):
            for heard in self._batches.add(frame):
                self._hear(heard)
        self._cut()
        self._hear(self._batches.tail())

    def _cut(self) -> None:
        for heard in self._batches.cut():
            self._hear(heard)

    def _see(self, packet: Packet[VideoStream] | None) -> None:
        """Take a video packet (``None`` or empty: drain): its picture is decoded and shown
        to the sampler once the next picture's packet (or the end) shows it is whole.

        Over RTSP a picture can come as several packets of one timestamp (RTP carries H.264
        NAL units apart: parameter sets, slices); decoded one by one each would be a picture
        of its own, half drawn. Packets of one timestamp are joined into one first (and an
        untimed packet with the next, timed one: the first picture of an RTSP session)."""
        assert self._frames is not None
        drain = packet is None or packet.size == 0
        held = self._held
        if not drain and held and packet is not None and _same_picture(held, packet):
            self._hold(packet)  # another part of the same picture
            return
        if not drain and packet is not None and self._dropped(packet):
            return
        self._held, self._held_bytes = [], 0
        if held:
            self._decode_picture(_joined(held))
        if drain:
            if not self._video_drained:
                self._video_drained = True
                self._decode_picture(None)
            return
        assert packet is not None
        if self._frames.keyframes_only and not packet.is_keyframe:
            return  # the decoder would skip it anyway: not even parsed
        self._video_drained = False
        self._held, self._held_bytes = [packet], packet.size

    def _hold(self, packet: Packet[VideoStream]) -> None:
        """Join a part to the picture held; past the caps (``max_picture_parts``,
        ``max_picture_bytes``) the picture is dropped, counted as a corrupt packet, with
        every further part of its timestamp."""
        self._held.append(packet)
        self._held_bytes += packet.size
        if len(self._held) <= self.max_picture_parts and (
            self._held_bytes <= self.max_picture_bytes
        ):
            return
        assert self._frames is not None
        log.debug(
            "stream %s: dropped a picture of over %d parts or %d bytes",
            self._stream_id,
            self.max_picture_parts,
            self.max_picture_bytes,
        )
        self._frames.corrupt_packet()
        self._overflowed = self._held[0].pts if self._held[0].pts is not None else packet.pts
        self._held, self._held_bytes = [], 0

    def _dropped(self, packet: Packet[VideoStream]) -> bool:
        """Whether ``packet`` is a further part of a picture dropped as too large."""
        if self._overflowed is not None and packet.pts == self._overflowed:
            return True
        self._overflowed = None
        return False

    def _decode_picture(self, packet: Packet[VideoStream] | None) -> None:
        """Decode one whole picture's packet (``None``: drain) for the sampler."""
        assert self._video is not None
        assert self._frames is not None
        drain = packet is None
        try:
            pictures = self._video.decode(packet)
        except av.error.FFmpegError as exc:
            if not drain:  # draining a decoder that is already drained or broken is no news
                log.debug("stream %s: skipped a corrupt video packet: %s", self._stream_id, exc)
                self._frames.corrupt_packet()
            return
        if pictures:
            self._cut()  # placed against the audio decoded before them
        for picture in pictures:
            self._frames.see(picture)

    def _decode(self, packet: Packet[AudioStream] | None) -> list[AudioFrame]:
        if self._stream is None:
            return []
        try:
            return self._stream.decode(packet)
        except av.error.FFmpegError as exc:
            if packet is None:  # draining a decoder that is already drained or broken
                return []
            # A packet the decoder rejects is skipped, whatever the reason it gives (garbage
            # in an AAC stream comes back as InvalidDataError or as EPERM). A decoder that
            # rejects everything brings no audio, which the stall timeout turns into a reopen.
            log.debug("stream %s: skipped a corrupt packet: %s", self._stream_id, exc)
            self._tally.corrupt_packet()
            return []


def _same_picture(held: list[Packet[VideoStream]], packet: Packet[VideoStream]) -> bool:
    """Whether ``packet`` is another part of the picture whose parts are ``held``."""
    first = held[0]
    if first.pts is None:  # untimed (before RTCP told the time): the next timed part times it
        return len(held) == 1 and packet.pts is not None
    return packet.pts == first.pts


def _joined(parts: list[Packet[VideoStream]]) -> Packet[VideoStream]:
    """The packets of one picture as one (the first one itself when it came whole)."""
    if len(parts) == 1:
        return parts[0]
    timed = next((p for p in parts if p.pts is not None), parts[0])
    joined = cast("Packet[VideoStream]", av.Packet(b"".join(bytes(p) for p in parts)))
    joined.pts, joined.dts, joined.time_base = timed.pts, timed.dts, timed.time_base
    joined.is_keyframe = any(p.is_keyframe for p in parts)
    return joined


def _looks_live(target: SourceTarget, container: av.container.InputContainer) -> bool:
    """Whether an opened source is a live stream rather than a recording.

    Over HTTP a recording has a size (the response's Content-Length) and no ICY headers
    (Icecast and SHOUTcast send ``icy-*``, which FFmpeg copies into the metadata); a live
    stream has no size. An HLS playlist is a recording when it is finished
    (``EXT-X-ENDLIST``): only then does the demuxer know its duration. The answer matters
    only when ``target.live`` is ``None``; RTMP and RTSP are always live, files never.
    """
    if target.live is not None:
        return target.live
    if target.kind == "hls" or container.format.name == "hls":
        return container.duration is None
    icy = any(key.lower().startswith("icy-") for key in container.metadata)
    return icy or container.size <= 0


_HTTP_STATUS: tuple[tuple[type[av.error.FFmpegError], str], ...] = (
    (av.error.HTTPBadRequestError, "the server answered 400 Bad Request"),
    (av.error.HTTPUnauthorizedError, "the server answered 401 Unauthorized"),
    (av.error.HTTPForbiddenError, "the server answered 403 Forbidden"),
    (av.error.HTTPNotFoundError, "the server answered 404 Not Found"),
    (av.error.HTTPTooManyRequestsError, "the server answered 429 Too Many Requests"),
    (av.error.HTTPOtherClientError, "the server refused the request (HTTP 4xx)"),
    (av.error.HTTPServerError, "the server failed (HTTP 5xx)"),
    (av.error.ProtocolNotFoundError, "FFmpeg cannot read this protocol"),
    (av.error.InvalidDataError, "no audio format FFmpeg recognises (invalid data)"),
    (av.error.DemuxerNotFoundError, "no audio format FFmpeg recognises"),
)


def plain_error(exc: av.error.FFmpegError) -> str:
    """What went wrong, in words: no FFmpeg error number, no repeated URL.

    FFmpeg's own errors carry made-up numbers (``FFERRTAG``, e.g. 875574520 for a 404);
    system errors (ECONNREFUSED, ENOENT ...) keep their usual text.
    """
    for kind, text in _HTTP_STATUS:
        if isinstance(exc, kind):
            return text
    if exc.errno in errno.errorcode and exc.strerror:
        return exc.strerror
    return exc.strerror or type(exc).__name__


def _converted(exc: av.error.FFmpegError, what: str) -> SourceError:
    """A PyAV error as ours: timeouts (our interrupt or FFmpeg's own) as SourceTimeout."""
    if isinstance(exc, av.error.ExitError | av.error.TimeoutError):
        return SourceTimeout(f"{what}: timed out")
    return SourceError(f"{what}: {plain_error(exc)}")
