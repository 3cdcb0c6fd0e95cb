"""The IMS emulator fetches a FileUrl as IMS does (IMS spec §4.1): a first try bounded by
one timeout and one retry bounded by another, no redirects followed; a timeout, redirect,
non-200 or refused connection is ``ResourceUnavailable.ImageDownloadError``."""

from __future__ import annotations

import logging

import aiohttp

from streamguard.emulator.validation import ApiError

__all__ = ["fetch_image"]

log = logging.getLogger(__name__)


async def _once(
    session: aiohttp.ClientSession, url: str, seconds: float, max_bytes: int
) -> bytes | None:
    """The image, or None when this try failed."""
    try:
        limits = aiohttp.ClientTimeout(total=seconds)
        async with session.get(url, timeout=limits, allow_redirects=False) as response:
            if response.status != 200:
                log.info("IMS download of %s: HTTP %d", url, response.status)
                return None
            data = await response.content.read(max_bytes + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.info("IMS download of %s failed: %r", url, exc)
        return None
    if len(data) > max_bytes:
        raise ApiError(
            "InvalidParameterValue.InvalidFileContentSize",
            f"The image at FileUrl is over {max_bytes} bytes.",
        )
    return data


async def fetch_image(
    session: aiohttp.ClientSession, url: str, timeouts: tuple[float, float], max_bytes: int
) -> bytes:
    """The image at ``url``, tried twice (``timeouts``: the first try's and the retry's)."""
    for timeout in timeouts:
        data = await _once(session, url, timeout, max_bytes)
        if data is not None:
            return data
    raise ApiError(
        "ResourceUnavailable.ImageDownloadError",
        "The image could not be downloaded from FileUrl (timeout, redirect or non-200).",
    )
