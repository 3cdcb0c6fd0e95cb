"""A real PostgreSQL server of its own, on a free loopback port in a temporary directory,
which tests and benchmarks can stop, crash and start again.

It uses Debian's binaries (``/usr/lib/postgresql/<version>/bin``; ``scripts/test`` installs
the ``postgresql`` package) and never the machine's own cluster. PostgreSQL refuses to run as
root: run as root, the server runs as the ``postgres`` user the package creates (or
``nobody``), in a directory it owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import psycopg
from psycopg import sql

from streamguard.testing.net import free_port, wait_listening

__all__ = ["PostgresServer", "postgres_bin"]

SUPERUSER = "streamguard"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed; scripts/test installs 'postgresql'")
    return found[-1].parent


def _unprivileged() -> pwd.struct_passwd | None:
    """Who the server runs as when we are root (None: as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists")


class PostgresServer:
    """Owns one ``postgres`` process and its data directory; ``stop``/``start`` keep the port
    and the data; ``kill`` crashes it (SIGKILL), ``create_database`` makes a fresh one."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.user = _unprivileged()
        self.workdir = Path(tempfile.mkdtemp(prefix="streamguard-pg-"))
        self.data = self.workdir / "data"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._databases = 0
        if self.user is not None:
            os.chown(self.workdir, self.user.pw_uid, self.user.pw_gid)
        self._initdb()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def _uid(self) -> int | None:
        return None if self.user is None else self.user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self.user is None else self.user.pw_gid

    def _initdb(self) -> None:
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER]
        command += ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"]
        done = subprocess.run(
            command,
            capture_output=True,
            cwd=self.workdir,
            env=self._env(),
            user=self._uid,
            group=self._gid,
            extra_groups=None if self.user is None else [],
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")

    def _env(self) -> dict[str, str]:
        home = self.user.pw_dir if self.user is not None else os.environ.get("HOME", "/")
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C"}

    def start(self) -> None:
        """Start the server (again) and wait until it takes connections."""
        if self._process is not None:
            return
        log = (self.workdir / "postgres.log").open("ab")
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for setting in (
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={self.workdir}",
            "fsync=off",  # a test server: durable across its own crash, not an OS crash
            "full_page_writes=off",
            "max_connections=200",
        ):
            command += ["-c", setting]
        self._process = subprocess.Popen(
            command,
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            env=self._env(),
            user=self._uid,
            group=self._gid,
            extra_groups=None if self.user is None else [],
        )
        log.close()
        wait_listening(self.port, self._process, f"postgres (see {self.workdir}/postgres.log)")
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): sessions are ended, the data kept."""
        self._signal_and_wait(signal.SIGINT)

    def kill(self) -> None:
        """A crash (SIGKILL of the postmaster); the next ``start`` recovers."""
        self._signal_and_wait(signal.SIGKILL)

    def _signal_and_wait(self, signum: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        backends = _children(process.pid)
        process.send_signal(signum)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # A killed postmaster's backends outlive it for a moment and keep its shared memory,
        # which a new postmaster refuses to share: wait until they are gone.
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in backends):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)

    def create_database(self) -> str:
        """A new empty database; its URL. (A schema of one shared database, made the
        connection's search path: as empty as a new database, and made in milliseconds
        where CREATE DATABASE takes a second.)"""
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children
