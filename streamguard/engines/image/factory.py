"""The image engine a config names, opened on an exit stack."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp

from streamguard.config.image import ImageEngineConfig, ImsImageConfig
from streamguard.core.errors import ConfigError, ConfigProblem
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.ims import ImsImageEngine
from streamguard.engines.image.opennsfw import OpenNsfwEngine
from streamguard.tencentcloud.client import RetryPolicy
from streamguard.tencentcloud.ims import ImsClient
from streamguard.tencentcloud.signing import Credentials

__all__ = ["ims_credentials", "open_image_engine"]


async def open_image_engine(stack: AsyncExitStack, config: ImageEngineConfig) -> ImageEngine:
    """The engine, closed with ``stack``. The offline model is loaded off the event loop
    (it reads ~23 MB and builds a session); IMS needs its credentials (``ConfigError``)."""
    if isinstance(config, ImsImageConfig):
        return await stack.enter_async_context(
            ImsImageEngine(_client(config), biz_type=config.biz_type)
        )
    engine = await asyncio.to_thread(OpenNsfwEngine, config)
    stack.push_async_callback(engine.aclose)
    return engine


def ims_credentials(config: ImsImageConfig) -> Credentials:
    """The IMS credentials, or a ``ConfigError`` naming what is missing."""
    problems = [
        ConfigProblem(f"image_engine.{name}", f"missing: set {env} or the credential file")
        for name, env, value in (
            ("secret_id", "$TENCENTCLOUD_SECRET_ID", config.secret_id),
            ("secret_key", "$TENCENTCLOUD_SECRET_KEY", config.secret_key),
        )
        if value is None
    ]
    if problems or config.secret_id is None or config.secret_key is None:
        raise ConfigError(problems)
    return Credentials(
        config.secret_id.get_secret_value(),
        config.secret_key.get_secret_value(),
        config.token.get_secret_value() if config.token else None,
    )


def _client(config: ImsImageConfig) -> ImsClient:
    return ImsClient(
        config.endpoint,
        ims_credentials(config),
        requests_per_second=config.requests_per_second,
        timeout=aiohttp.ClientTimeout(total=config.request_timeout, connect=config.connect_timeout),
        retry=RetryPolicy(attempts=config.retry_attempts, total_seconds=config.retry_total_seconds),
        region=config.region,
    )
