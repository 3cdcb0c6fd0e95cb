"""Serving an aiohttp application on a host and port: the control API, clip delivery and
the AMS emulator all start their listener the same way."""

from __future__ import annotations

from aiohttp import web

__all__ = ["HEADER_TIMEOUT", "start_site"]

HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to send a whole request head, and may then stay idle."""


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 2.0,
    header_timeout: float = HEADER_TIMEOUT,
) -> tuple[web.AppRunner, int]:
    """Listen on ``host:port`` (0: any free port); return the runner to clean up and the
    port actually bound. ``runner.cleanup()`` lets requests in flight finish first.

    A connection that has not sent a complete request head within ``header_timeout`` of
    opening (or of its last response) is closed, so clients that open connections and
    trickle or withhold their headers cannot hold them — or the file descriptors — for
    long. aiohttp's keep-alive timer does exactly this: it runs from the moment a connection
    is made and closes it if no whole request has arrived when it fires; a request being
    handled is never cut short by it.
    """
    runner = web.AppRunner(
        app, shutdown_timeout=shutdown_timeout, access_log=None, keepalive_timeout=header_timeout
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    bound: int = runner.addresses[0][1]
    return runner, bound
