"""systemd's notify protocol: READY, RELOADING, STATUS, WATCHDOG and STOPPING datagrams.

A few lines instead of a dependency: the protocol is one datagram per message to the
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

__all__ = ["Notifier"]


class Notifier:
    """Talks to systemd when started by it (``$NOTIFY_SOCKET`` set); otherwise does nothing."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = (
            int(watchdog_usec) / 1_000_000 / 2 if watchdog_usec.isdigit() and mine else None
        )
        """Seconds between WATCHDOG=1 pings: half of systemd's WatchdogSec, or None."""

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *fields: str) -> None:
        """Send ``KEY=value`` fields in one datagram; errors are ignored by design (systemd
        may be gone during shutdown, and the daemon must not die of it)."""
        if not self._address:
            return
        # Never block the event loop on systemd: a full socket buffer drops the datagram.
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
            contextlib.suppress(OSError),
        ):
            sock.setblocking(False)
            sock.sendto("\n".join(fields).encode(), self._address)

    def ready(self, status: str) -> None:
        """Tell systemd start-up is done."""
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """Replace the status line ``systemctl status`` shows."""
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        """Tell systemd a reload began (the unit shows ``reloading`` until ``reloaded``)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def reloaded(self, status: str) -> None:
        """Tell systemd the reload is over, whatever its result (``status`` says it)."""
        self.send("READY=1", f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> None:
        """Tell systemd shutdown has begun."""
        self.send("STOPPING=1", f"STATUS={status}")

    async def watchdog(self) -> None:
        """Ping the watchdog at half its interval until cancelled (run as a named task)."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
