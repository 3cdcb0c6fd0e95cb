"""The fault driver: seeded random faults on every part the daemon depends on.

Two loops run until the deadline. The room loop hits one room at a time: its server
dropped (killed, then back after a few seconds), its connections stalled (open, silent) or
fed garbage bytes. The system loop injects one fault at a time on the rest: the broker
stopped and restarted, a burst of AMS emulator faults (throttling, 503s, InternalError,
hung answers, stuck or failed tasks), the disk filled and freed, and SIGKILL of the daemon
followed by a restart. System faults never overlap, so the disk is never full while the
daemon is killed (the results waiting in memory for the disk would die with it, by
design). The disk is filled just after a checkpoint of the database's log, so the daemon's
next write, not only its next new file, meets the full disk. A monitor samples the daemon's
RSS and restarts it if it ever exits on its own (counted as a crash, which fails the soak).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.soak.daemon import Daemon
from bench.soak.sources import LiveRoom
from streamguard.emulator.app import AmsEmulator
from streamguard.emulator.faults import Faults
from streamguard.testing.broker import Mosquitto
from streamguard.testing.disk import SmallDisk

__all__ = ["Driver"]

_AMS_FAULTS = ("throttle", "server_errors", "internal_errors", "hangs", "stuck", "errors")


@dataclass
class Timing:
    """Seconds between faults and how long each lasts (drawn uniformly from the ranges)."""

    room_every: tuple[float, float] = (4.0, 12.0)
    system_every: tuple[float, float] = (10.0, 30.0)
    room_down: tuple[float, float] = (3.0, 12.0)
    broker_down: tuple[float, float] = (3.0, 15.0)
    ams_burst: tuple[float, float] = (10.0, 30.0)
    disk_full: tuple[float, float] = (10.0, 25.0)
    killed: tuple[float, float] = (0.5, 3.0)


class Driver:
    """Owns nothing: it acts on the soak's parts and counts what it injected."""

    def __init__(
        self,
        *,
        seed: int,
        rooms: list[LiveRoom],
        broker: Mosquitto,
        emulator: AmsEmulator,
        daemon: Daemon,
        disk: SmallDisk | None,
        timing: Timing | None = None,
    ) -> None:
        # One generator per loop: each draws the same faults for a seed whatever the timing.
        self.room_rng = random.Random(f"{seed}-rooms")
        self.system_rng = random.Random(f"{seed}-system")
        self.seed = seed
        self.rooms = rooms
        self.broker = broker
        self.emulator = emulator
        self.daemon = daemon
        self.disk = disk
        self.timing = timing or Timing()
        self.injected: Counter[str] = Counter()
        self.crashes = 0
        self.lifecycle = asyncio.Lock()  # one owner of the daemon's process at a time

    def _room_draw(self, bounds: tuple[float, float]) -> float:
        return self.room_rng.uniform(*bounds)

    def _draw(self, bounds: tuple[float, float]) -> float:
        return self.system_rng.uniform(*bounds)

    async def room_faults(self, deadline: float) -> None:
        """One room fault after another until the deadline."""
        while time.monotonic() + self.timing.room_every[1] < deadline:
            await asyncio.sleep(self._room_draw(self.timing.room_every))
            room = self.room_rng.choice(self.rooms)
            kind = self.room_rng.choice(("source_dropped", "source_stalled", "source_garbage"))
            if kind == "source_dropped":
                await room.kill()
                await asyncio.sleep(self._room_draw(self.timing.room_down))
                await room.start()
            elif kind == "source_stalled":
                if not room.stall():
                    continue
            elif not room.feed_garbage():
                continue
            self.injected[kind] += 1

    async def system_faults(self, deadline: float) -> None:
        """One system fault at a time until the deadline."""
        kinds = ["broker_restarted", "ams_faults", "daemon_killed"]
        if self.disk is not None:
            kinds.append("disk_filled")
        while time.monotonic() + self.timing.system_every[1] < deadline:
            await asyncio.sleep(self._draw(self.timing.system_every))
            kind = self.system_rng.choice(kinds)
            if kind == "broker_restarted":
                await asyncio.to_thread(self.broker.stop)
                await asyncio.sleep(self._draw(self.timing.broker_down))
                await asyncio.to_thread(self.broker.start)
            elif kind == "ams_faults":
                await self._ams_burst()
            elif kind == "disk_filled":
                await self._fill_disk()
            else:
                await self._kill_daemon()
            self.injected[kind] += 1

    async def _ams_burst(self) -> None:
        fault = self.system_rng.choice(_AMS_FAULTS)
        share = self.system_rng.uniform(0.3, 0.8)
        seed = self.system_rng.randrange(1 << 30)
        faults = Faults(hang_seconds=20.0, seed=seed)
        setattr(faults, fault, share)
        self.emulator.faults = faults
        self.injected[f"ams:{fault}"] += 1
        await asyncio.sleep(self._draw(self.timing.ams_burst))
        self.emulator.faults = Faults(seed=seed)

    async def _fill_disk(self) -> None:
        assert self.disk is not None
        await asyncio.to_thread(_checkpoint, self.disk.path / "streamguard.db")
        await asyncio.to_thread(self.disk.fill)
        try:
            await asyncio.sleep(self._draw(self.timing.disk_full))
        finally:
            await asyncio.to_thread(self.disk.free)

    async def _kill_daemon(self) -> None:
        async with self.lifecycle:
            await asyncio.to_thread(self.daemon.kill)
            await asyncio.sleep(self._draw(self.timing.killed))
            await asyncio.to_thread(self.daemon.start)

    async def monitor(self, every: float = 2.0) -> None:
        """Sample RSS; restart the daemon if it exited on its own (a crash). Until cancelled."""
        while True:
            async with self.lifecycle:
                if self.daemon.process is not None and self.daemon.exited() is not None:
                    self.crashes += 1
                    await asyncio.to_thread(self.daemon.start)
                self.daemon.sample_rss()
            await asyncio.sleep(every)

    async def restore(self) -> None:
        """Everything back to health: rooms up, disk free, AMS sane, broker up."""
        for room in self.rooms:
            if room.closed.is_set():
                await room.start()
        if self.disk is not None:
            await asyncio.to_thread(self.disk.free)
        self.emulator.faults = Faults()
        await asyncio.to_thread(self.broker.start)


def _checkpoint(db: Path) -> None:
    """Empty the database's write-ahead log, as a checkpoint does now and then.

    SQLite reuses a log file it has already grown, so a disk filled while the log has room
    may never refuse the daemon a write; filled just after a checkpoint, it refuses the
    next one. Best effort: the daemon may hold the log busy for a moment.
    """
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass
