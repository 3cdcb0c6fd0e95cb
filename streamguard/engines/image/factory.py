"""The image engine a config names, opened on an exit stack."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp

from streamguard.config.image import ImageEngineConfig, ImsImageConfig
from streamguard.engines.ams.credentials import tencent_credentials
from streamguard.engines.image.base import ImageEngine
from streamguard.engines.image.opennsfw import OpenNsfwEngine
from streamguard.engines.ims.engine import ImsImageEngine
from streamguard.engines.ims.file_urls import PictureUrls
from streamguard.engines.ims.inbox import ImsCallbackInbox
from streamguard.engines.ims.settings import ImsEngineSettings
from streamguard.tencentcloud.client import RetryPolicy
from streamguard.tencentcloud.ims_client import ImsClient
from streamguard.tencentcloud.signing import Credentials

__all__ = ["ims_credentials", "open_image_engine"]


async def open_image_engine(stack: AsyncExitStack, config: ImageEngineConfig) -> ImageEngine:
    """The engine, closed with ``stack``. The offline model is loaded off the event loop
    (it reads ~23 MB and builds a session); IMS needs its credentials (``ConfigError``)."""
    if isinstance(config, ImsImageConfig):
        return await _open_ims(stack, config)
    engine = await asyncio.to_thread(OpenNsfwEngine, config)
    stack.push_async_callback(engine.aclose)
    return engine


def ims_credentials(config: ImsImageConfig) -> Credentials:
    """The IMS credentials, or a ``ConfigError`` naming what is missing."""
    return tencent_credentials("image_engine", config.secret_id, config.secret_key, config.token)


async def _open_ims(stack: AsyncExitStack, config: ImsImageConfig) -> ImsImageEngine:
    """``streamguard.engines.ims.ImsImageEngine`` with its client (and, in async mode, its
    callback inbox), all closed with ``stack``."""
    client = await stack.enter_async_context(
        ImsClient(
            config.endpoint,
            ims_credentials(config),
            sync_per_second=config.requests_per_second,
            async_per_second=config.async_requests_per_second,
            timeout=aiohttp.ClientTimeout(
                total=config.request_timeout, connect=config.connect_timeout
            ),
            retry=RetryPolicy(
                attempts=config.retry_attempts, total_seconds=config.retry_total_seconds
            ),
            region=config.region,
        )
    )
    inbox = None
    if config.mode == "async" or config.send_as == "url":
        host, _, port = config.callback_listen.rpartition(":")
        public = config.callback_public_url or ""
        # Pictures stay served until their verdict; a URL outlives IMS's download window.
        pictures = (
            PictureUrls(public, ttl=config.callback_deadline + 60)
            if config.send_as == "url"
            else None
        )
        inbox = await stack.enter_async_context(
            ImsCallbackInbox(host, int(port), public_base_url=public, pictures=pictures)
        )
    settings = ImsEngineSettings(
        biz_type=config.biz_type,
        mode=config.mode,
        max_in_flight=config.max_in_flight,
        callback_deadline=config.callback_deadline,
        jpeg_quality=config.jpeg_quality,
    )
    engine = ImsImageEngine(client, settings, inbox)
    stack.push_async_callback(engine.aclose)
    return engine
