"""A real mosquitto broker on a free loopback port, which tests and benchmarks can stop and
restart."""

from __future__ import annotations

import getpass
import shutil
import signal
import subprocess
from pathlib import Path

from streamguard.testing.net import free_port, wait_listening

__all__ = ["Mosquitto"]


class Mosquitto:
    """Owns one mosquitto process; ``stop``/``start`` keep the same port (and persistence)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed; scripts/test installs it")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Run as whoever starts it: as root, mosquitto would otherwise switch to the
            # 'mosquitto' user, which cannot write persistence into the test's directory.
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "log_dest stderr\n",
            encoding="utf-8",
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._process is not None:
            return
        log = (self.workdir / "mosquitto.log").open("ab")
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=log, stderr=log
        )
        log.close()
        wait_listening(self.port, self._process, f"mosquitto (see {self.workdir}/mosquitto.log)")

    def reload(self) -> None:
        """Make the running broker read its configuration again (SIGHUP; e.g. an ACL file)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
