"""Serving an aiohttp application on a host and port: the control API, clip delivery and
the AMS emulator all start their listener the same way."""

from __future__ import annotations

from aiohttp import web

__all__ = ["start_site"]


async def start_site(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 2.0
) -> tuple[web.AppRunner, int]:
    """Listen on ``host:port`` (0: any free port); return the runner to clean up and the
    port actually bound. ``runner.cleanup()`` lets requests in flight finish first."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    bound: int = runner.addresses[0][1]
    return runner, bound
