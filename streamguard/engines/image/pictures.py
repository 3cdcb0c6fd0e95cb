"""Pictures in and out: image files (JPEG, PNG, WebP, GIF's first frame ...) decoded to RGB,
and frames encoded as JPEG for evidence. Pillow does the work; blocking, so callers run it
on a worker thread."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from streamguard.core.errors import EngineError
from streamguard.core.frame import Picture

__all__ = [
    "MAX_PIXELS",
    "ImageTooLarge",
    "UndecodableImage",
    "decode_picture",
    "encode_jpeg",
    "image_size",
]

MAX_PIXELS = 40_000_000
"""A picture with more pixels than this (a decompression bomb, or no photo) is refused."""


class UndecodableImage(EngineError):
    """The bytes are not a picture Pillow can read, or one too large to read."""


class ImageTooLarge(UndecodableImage):
    """The picture has more pixels than :data:`MAX_PIXELS`."""


def decode_picture(data: bytes, max_side: int = 640) -> Picture:
    """An image file's first frame as RGB, scaled down to ``max_side`` on its longer side."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
            width, height = opened.size
            if width * height > MAX_PIXELS:
                raise ImageTooLarge(
                    f"the image has {width}x{height} pixels; at most {MAX_PIXELS:,} are read"
                )
            opened.draft("RGB", (max_side, max_side))  # JPEG: decode at a smaller scale
            image = opened.convert("RGB")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLarge(f"the image has too many pixels: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImage(
            "not an image that can be decoded (JPEG, PNG, WebP, GIF, BMP, TIFF ...)"
        ) from exc
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def image_size(data: bytes) -> tuple[int, int]:
    """An image file's width and height, read from its header (nothing is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, ValueError) as exc:
        raise UndecodableImage(
            "not an image that can be decoded (JPEG, PNG, WebP, GIF, BMP, TIFF ...)"
        ) from exc


def encode_jpeg(picture: Picture, quality: int = 85) -> bytes:
    """A picture as a baseline JPEG (evidence of a frame)."""
    out = io.BytesIO()
    Image.fromarray(picture, mode="RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()
