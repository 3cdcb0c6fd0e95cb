"""``streamguard run -c FILE`` as a child process, killed and started again by the soak.

Each start is a lifetime: when it began, when and how it ended (SIGKILL by the driver,
SIGTERM at the end, or an exit of its own: a crash). The RSS of the process is sampled
from ``/proc`` while it runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TOKEN", "Daemon", "Lifetime"]

TOKEN = "soak-token-0123456789"


@dataclass
class Lifetime:
    """One run of the daemon, in epoch seconds."""

    started_at: float
    ready_after: float | None = None
    ended_at: float | None = None
    ended_by: str = ""
    """"kill" (SIGKILL by the driver), "term" (SIGTERM, the end) or "crash" (exited alone)."""
    exit_code: int | None = None


class Daemon:
    """Owns the daemon's process; ``start`` returns once its API answers ``/healthz``."""

    def __init__(self, workdir: Path, api_port: int, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.config = workdir / "streamguard.toml"
        self.log_path = workdir / "daemon.log"
        self.api_port = api_port
        self.env = {**os.environ, "STREAMGUARD_API_TOKEN": TOKEN, **env}
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            self.env.pop(name, None)
        self.process: subprocess.Popen[bytes] | None = None
        self.lifetimes: list[Lifetime] = []
        self.rss_samples: list[tuple[float, int]] = []

    def start(self, timeout: float = 120.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamguard", "run", "-c", str(self.config)],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        lifetime = Lifetime(started_at=time.time())
        self.lifetimes.append(lifetime)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited() is not None:
                raise RuntimeError(f"the daemon exited at start; see {self.log_path}")
            status, _ = self.request("GET", "/healthz", token=None, timeout=2)
            if status == 200:
                lifetime.ready_after = time.time() - lifetime.started_at
                return
            time.sleep(0.2)
        raise RuntimeError(f"the daemon did not answer /healthz in {timeout} s")

    def exited(self) -> int | None:
        """The exit code if the process ended on its own (recorded as a crash), else None."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is not None:
            self._ended("crash", code)
        return code

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power cut would."""
        if self.process is not None:
            self.process.kill()
            self._ended("kill", self.process.wait())

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._ended("term", code)
        return code

    def _ended(self, how: str, code: int) -> None:
        lifetime = self.lifetimes[-1]
        lifetime.ended_at, lifetime.ended_by, lifetime.exit_code = time.time(), how, code
        self.process = None

    def sample_rss(self) -> int | None:
        """The process's resident set size in bytes now (None when not running)."""
        if self.process is None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
                self.rss_samples.append((time.time(), rss))
                return rss
        return None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """One call to the control API: (status, parsed JSON or text); status 0 when the
        API does not answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        except (OSError, urllib.error.URLError):
            return 0, None
        text = payload.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def metric(self, sample: str) -> float | None:
        """One sample of ``/metrics`` by its name with labels (None when not answered)."""
        status, text = self.request("GET", "/metrics", token=None, timeout=5)
        if status != 200 or not isinstance(text, str):
            return None
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return 0.0
