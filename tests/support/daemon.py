"""The whole daemon as a subprocess, with a notify socket the test reads like systemd does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streamguard.testing.net import free_port

__all__ = ["DaemonProcess"]

TOKEN = "test-token-0123456789"


class DaemonProcess:
    """``streamguard run`` in a child process; ``start`` waits for READY=1 on the socket."""

    def __init__(
        self,
        workdir: Path,
        config: str,
        *,
        watchdog_usec: int = 2_000_000,
        env: dict[str, str] | None = None,
        instance: str = "test",
    ) -> None:
        self.instance = instance
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.extra_env = env or {}
        self.port = free_port()
        self.config_path = workdir / "streamguard.toml"
        self.write_config(config)
        self.notify_path = workdir / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.2)
        self.watchdog_usec = watchdog_usec
        self.messages: list[str] = []
        # Read the socket all the time, as systemd does: the daemon drops notifications
        # rather than block when nobody reads them.
        self._closed = threading.Event()
        self._reader = threading.Thread(
            target=self._read_forever, name="notify-reader", daemon=True
        )
        self._reader.start()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "daemon.log"

    def write_config(self, body: str) -> None:
        head = f'[instance]\nid = "{self.instance}"\nstate_dir = "{self.workdir / "state"}"\n'
        head += f"[api]\nport = {self.port}\n"
        self.config_path.write_text(head + body, encoding="utf-8")

    def start(self, timeout: float = 120) -> None:
        env = {
            **os.environ,
            "STREAMGUARD_API_TOKEN": TOKEN,
            "NOTIFY_SOCKET": str(self.notify_path),
            "WATCHDOG_USEC": str(self.watchdog_usec),
            **self.extra_env,
        }
        env.pop("WATCHDOG_PID", None)
        # A restart must wait for the new process's READY, not find the last run's.
        self.messages.clear()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamguard", "run", "-c", str(self.config_path)],
                env=env,
                stdout=log,
                stderr=log,
            )
        self.wait_for_message("READY=1", timeout)

    def _read_forever(self) -> None:
        while not self._closed.is_set():
            try:
                self.messages.extend(self.notify.recv(4096).decode().splitlines())
            except TimeoutError:
                continue

    def wait_for_message(self, wanted: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if wanted in self.messages:
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.log()}")
        raise AssertionError(f"no {wanted} within {timeout} s; got {self.messages}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-5000:]

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 120) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.kill()
        self._closed.set()
        self._reader.join()
        self.notify.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """One HTTP call to the control API; returns (status, parsed JSON or text)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        text = payload.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text
