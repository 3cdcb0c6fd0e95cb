"""The IMS emulator's eyes: an image decoded with PyAV, checked against IMS's limits, and
judged by a deterministic rule (IMS spec §4.1, §7).

**The rule.** A picture *shows* a marker colour when at least a quarter of its pixels lie
within ±64 (per RGB channel) of it; a JPEG's colour drift stays well inside that. The
markers, in IMS's order of priority (the answer's ``Label`` is the first one shown):

=========  ===============  ==========  =========  ===========  =====  ================
marker     RGB              Suggestion  Label      SubLabel     Score  reported in
=========  ===============  ==========  =========  ===========  =====  ================
red        255, 0, 0        Block       Porn       SexBehavior  95     LabelResults
magenta    255, 0, 255      Review      Porn       Sexy         75     LabelResults
blue       0, 0, 255        Block       Terror     Bloody       90     LabelResults
yellow     255, 255, 0      Review      Ad         QrCode       80     ObjectResults
=========  ===============  ==========  =========  ===========  =====  ================

Anything else is ``Pass``/``Normal``. A GIF's frames are sampled by ``Interval`` and
``MaxFrames`` (frames 0, N, 2N …; the first only by default) and every marker any sampled
frame shows counts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from streamguard.emulator.validation import ApiError

__all__ = [
    "MARKERS",
    "MIN_BYTES",
    "MIN_SHARE",
    "TOLERANCE",
    "ImageLimits",
    "Marker",
    "Sighting",
    "read_image",
    "shown",
]

MIN_BYTES = 16
MIN_SHARE = 0.25
TOLERANCE = 64
_SAMPLE_SIDE = 256  # pixels per side looked at: the rule needs shares, not detail
_IMAGE_FORMATS = frozenset({"gif", "ico", "image2", "apng"})


@dataclass(frozen=True, slots=True)
class Marker:
    """A colour the rule looks for and what IMS says when it sees it."""

    name: str
    rgb: tuple[int, int, int]
    suggestion: str
    label: str
    sub_label: str
    score: int
    scene: str
    """"Porn"/"Terror" for a classification hit; "QrCode" for an object detection."""

    @property
    def detected_object(self) -> bool:
        """Reported among ObjectResults (a QR code), not LabelResults."""
        return self.scene == "QrCode"


MARKERS = (
    Marker("red", (255, 0, 0), "Block", "Porn", "SexBehavior", 95, "Porn"),
    Marker("magenta", (255, 0, 255), "Review", "Porn", "Sexy", 75, "Porn"),
    Marker("blue", (0, 0, 255), "Block", "Terror", "Bloody", 90, "Terror"),
    Marker("yellow", (255, 255, 0), "Review", "Ad", "QrCode", 80, "QrCode"),
)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A marker shown, on what share of the pixels, in which sampled frame."""

    marker: Marker
    share: float
    frame: int


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What an action accepts (sync and async differ, spec §4.1)."""

    min_side: int
    max_side: int = 10_000
    max_ratio: float = 90.0
    max_frames_cap: int | None = None
    """The async task samples at most this many frames of a GIF (PY: 5)."""


Picture = npt.NDArray[np.uint8]


def _container(data: bytes) -> av.container.InputContainer:
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise ApiError(
            "InvalidParameterValue.InvalidImageContent", f"The image cannot be decoded: {exc}"
        ) from exc
    name = container.format.name
    if not (name.endswith("_pipe") or name in _IMAGE_FORMATS) or not container.streams.video:
        container.close()
        raise ApiError(
            "InvalidParameterValue.InvalidImageContent",
            f"The data is not an image (it reads as {name}).",
        )
    return container


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    if min(width, height) <= limits.min_side:
        raise ApiError(
            "InvalidParameter.ImageSizeTooSmall",
            f"The image is {width}x{height}; each side must be over {limits.min_side} px.",
        )
    if max(width, height) >= limits.max_side:
        raise ApiError(
            "InvalidParameterValue.InvalidFileContentSize",
            f"The image is {width}x{height}; each side must be under {limits.max_side} px.",
        )
    if max(width, height) / min(width, height) >= limits.max_ratio:
        raise ApiError(
            "InvalidParameter.ImageAspectRatioTooLarge",
            f"The image is {width}x{height}; its aspect ratio must be under "
            f"{limits.max_ratio:g}:1.",
        )


def read_image(
    data: bytes, limits: ImageLimits, interval: int = 0, max_frames: int = 1
) -> list[Picture]:
    """The sampled frames of an image (RGB, scaled down), or the ApiError IMS answers.

    Blocking (decoding): run it on a worker thread."""
    if len(data) < MIN_BYTES:
        raise ApiError(
            "InvalidParameter.ImageDataTooSmall",
            f"The image is {len(data)} bytes; at least {MIN_BYTES} are needed.",
        )
    step = max(1, interval)
    wanted = max(1, max_frames)
    if limits.max_frames_cap is not None:
        wanted = min(wanted, limits.max_frames_cap)
    pictures: list[Picture] = []
    with _container(data) as container:
        stream = container.streams.video[0]
        if stream.width and stream.height:  # known from the header: refuse before decoding
            _check_size(stream.width, stream.height, limits)
        try:
            for index, frame in enumerate(container.decode(video=0)):
                if index == 0:
                    _check_size(frame.width, frame.height, limits)
                if index % step == 0:
                    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    pictures.append(_small(rgb))
                if len(pictures) >= wanted:
                    break
        except (av.FFmpegError, ValueError) as exc:
            if not pictures:
                raise ApiError(
                    "InvalidParameterValue.InvalidImageContent",
                    f"The image cannot be decoded: {exc}",
                ) from exc
    if not pictures:
        raise ApiError("InvalidParameterValue.InvalidImageContent", "The image has no frame.")
    return pictures


def _small(picture: Picture) -> Picture:
    step = max(1, max(picture.shape[:2]) // _SAMPLE_SIDE)
    return picture[::step, ::step]


def shown(pictures: list[Picture]) -> list[Sighting]:
    """Every marker some frame shows (its largest share), in priority order."""
    sightings: list[Sighting] = []
    for marker in MARKERS:
        best: Sighting | None = None
        for index, picture in enumerate(pictures):
            distance = np.abs(picture.astype(np.int16) - np.array(marker.rgb, dtype=np.int16))
            share = float(np.mean(np.all(distance <= TOLERANCE, axis=2)))
            if share >= MIN_SHARE and (best is None or share > best.share):
                best = Sighting(marker, share, index)
        if best is not None:
            sightings.append(best)
    return sightings
