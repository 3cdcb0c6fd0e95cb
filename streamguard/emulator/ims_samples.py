"""Images the IMS emulator's rule judges (``ims_images``): a marker patch on a grey picture,
encoded as JPEG, PNG or an animated GIF. For tests, the benchmark and trying the emulator."""

from __future__ import annotations

import io
from collections.abc import Sequence

import av
import numpy as np
import numpy.typing as npt

__all__ = ["GREY", "picture", "sample_image"]

GREY = (128, 128, 128)
_CODECS = {"jpeg": ("mjpeg", "mjpeg", "yuvj420p"), "png": ("image2pipe", "png", "rgb24")}


def picture(
    width: int, height: int, marker: tuple[int, int, int] | None = None, share: float = 0.5
) -> npt.NDArray[np.uint8]:
    """A grey RGB picture whose left ``share`` of columns is ``marker`` (none: all grey)."""
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = GREY
    if marker is not None:
        pixels[:, : round(width * share)] = marker
    return pixels


def sample_image(frames: Sequence[npt.NDArray[np.uint8]], image_format: str = "jpeg") -> bytes:
    """``frames`` encoded: JPEG or PNG (the first frame) or GIF (all, as an animation)."""
    out = io.BytesIO()
    if image_format == "gif":
        container_format, codec, pix_fmt = "gif", "gif", "rgb8"
    else:
        container_format, codec, pix_fmt = _CODECS[image_format]
        frames = frames[:1]
    height, width = frames[0].shape[:2]
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=10)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()
