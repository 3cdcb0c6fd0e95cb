"""Pictures (RGB arrays) as the JPEG IMS is sent, encoded with PyAV (blocking: callers run
it on a worker thread)."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt

from streamguard.core.errors import EngineError

__all__ = ["Picture", "encode_jpeg"]

Picture = npt.NDArray[np.uint8]
"""RGB, height x width x 3 (the frames engines' ``Picture``)."""


def encode_jpeg(picture: Picture, quality: int = 4) -> bytes:
    """A baseline JPEG of ``picture``; ``quality`` is the MJPEG quantiser (2 best … 31 worst;
    4 keeps a 640x360 frame near 30-60 KB).

    Odd sides are cropped by one pixel (4:2:0 chroma needs even ones)."""
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise EngineError(f"not an RGB picture: shape {picture.shape}")
    height, width = picture.shape[0] // 2 * 2, picture.shape[1] // 2 * 2
    if min(height, width) < 2:
        raise EngineError(f"a picture of {picture.shape[1]}x{picture.shape[0]} has no pixels")
    frame = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(picture[:height, :width], dtype=np.uint8), format="rgb24"
    )
    out = io.BytesIO()
    with av.open(out, "w", format="mjpeg") as container:
        quantiser = str(quality)
        stream = container.add_stream(
            "mjpeg", rate=1, options={"qmin": quantiser, "qmax": quantiser}
        )
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()
