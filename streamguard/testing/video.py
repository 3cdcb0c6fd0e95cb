"""Test video made on the spot with PyAV: scenes you can tell apart, over a tone staircase.

A "scene show" is ``scenes`` scenes of ``scene_seconds`` each. Scene ``k`` shows picture
``patterns[k]``: a blocky random picture drawn from a seed (so two scenes with the same seed
look the same, and different seeds look nothing alike), with a small square that moves a few
pixels each frame (so frames of one scene are near-duplicates, not identical). The audio is
the tone staircase of ``tests/support/media``: second ``i`` is a sine at ``400 + 100 * i``
Hz, so the audio heard at a frame's place on the timeline tells which second, and so which
scene, the frame should show.

H.264 (libx264) with a keyframe every ``gop_seconds`` and no scene-cut keyframes, and AAC,
in MPEG-TS or FLV: what a live HTTP stream carries.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from streamguard.testing.images import marked

__all__ = ["SceneShow", "pattern", "scene_of"]

BASE_HZ = 400
STEP_HZ = 100
_RATE = 44_100
_AUDIO_FRAME = 1024
Picture = npt.NDArray[np.uint8]


def pattern(seed: int, width: int, height: int) -> Picture:
    """A blocky random RGB picture (an 8x6 grid of colours scaled up), the same for a seed."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    rows = np.arange(height) * 6 // height
    cols = np.arange(width) * 8 // width
    return np.ascontiguousarray(grid[rows][:, cols])


def scene_of(picture: Picture, patterns: list[Picture]) -> int:
    """Which of ``patterns`` a (decoded, possibly rescaled) picture shows: the nearest one."""
    distances = []
    for candidate in patterns:
        resized = _resize_nearest(candidate, picture.shape[1], picture.shape[0])
        distances.append(float(np.abs(resized.astype(np.int16) - picture).mean()))
    return int(np.argmin(distances))


def _resize_nearest(picture: Picture, width: int, height: int) -> Picture:
    rows = np.arange(height) * picture.shape[0] // height
    cols = np.arange(width) * picture.shape[1] // width
    resized: Picture = picture[rows][:, cols]
    return resized


@dataclass(frozen=True, slots=True)
class SceneShow:
    """The parameters of a generated video; :meth:`encode` gives its bytes."""

    seeds: tuple[int, ...] = (1, 2, 1, 3)
    scene_seconds: int = 4
    fps: int = 10
    gop_seconds: float = 1.0
    width: int = 320
    height: int = 240
    container: str = "mpegts"
    marked: tuple[int, ...] = ()
    """Scenes shown in the marker colour of ``streamguard.testing.images`` instead."""
    audio: bool = True
    """False: video alone, no audio stream at all."""

    @property
    def seconds(self) -> int:
        return len(self.seeds) * self.scene_seconds

    def patterns(self) -> list[Picture]:
        """The picture of each scene, in order (equal seeds give equal pictures)."""
        return [
            marked(self.height, self.width)
            if n in self.marked
            else pattern(seed, self.width, self.height)
            for n, seed in enumerate(self.seeds)
        ]

    def keyframes(self) -> int:
        """How many keyframes the video has."""
        return int(np.ceil(self.seconds * self.fps / round(self.fps * self.gop_seconds)))

    def encode(self) -> bytes:
        """The whole show, muxed (``container``: ``mpegts`` or ``flv``)."""
        out = io.BytesIO()
        with av.open(out, "w", format=self.container) as muxer:
            video = self._video_stream(muxer)
            audio = None
            if self.audio:
                audio = muxer.add_stream("aac", rate=_RATE, layout="mono")
                assert isinstance(audio, AudioStream)
                audio.bit_rate = 64_000
            self._write(muxer, video, audio)
        return out.getvalue()

    def _video_stream(self, muxer: av.container.OutputContainer) -> VideoStream:
        video = muxer.add_stream(
            "libx264",
            rate=self.fps,
            options={
                "g": str(round(self.fps * self.gop_seconds)),
                "keyint_min": str(round(self.fps * self.gop_seconds)),
                "sc_threshold": "0",
                "preset": "ultrafast",
                "tune": "zerolatency",
            },
        )
        assert isinstance(video, VideoStream)
        video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
        video.bit_rate = 300_000
        return video

    def _write(
        self, muxer: av.container.OutputContainer, video: VideoStream, audio: AudioStream | None
    ) -> None:
        patterns = self.patterns()
        frames = self.seconds * self.fps
        samples = self.seconds * _RATE
        tone = _staircase(samples)
        sent = 0
        for n in range(frames + 1):
            # Audio up to this frame's time first, so the muxer interleaves closely.
            until = min(samples, (n * _RATE) // self.fps)
            while audio is not None and (
                sent + _AUDIO_FRAME <= until or (n == frames and sent < samples)
            ):
                piece = tone[sent : sent + _AUDIO_FRAME]
                frame = av.AudioFrame.from_ndarray(
                    piece[np.newaxis, :], format="s16", layout="mono"
                )
                frame.sample_rate, frame.pts, frame.time_base = _RATE, sent, Fraction(1, _RATE)
                muxer.mux(audio.encode(frame))
                sent += len(piece)
            if n == frames:
                break
            picture = patterns[n // (self.scene_seconds * self.fps)].copy()
            x = 10 + (n * 3) % (self.width - 30)
            picture[10:26, x : x + 16] = 255  # the moving square
            video_frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            video_frame.pts = n
            muxer.mux(video.encode(video_frame))
        muxer.mux(video.encode(None))
        if audio is not None:
            muxer.mux(audio.encode(None))


def _staircase(samples: int) -> npt.NDArray[np.int16]:
    t = np.arange(samples) / _RATE
    hz = BASE_HZ + STEP_HZ * np.floor(t)
    return (0.5 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
