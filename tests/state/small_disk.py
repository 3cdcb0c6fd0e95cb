"""A small filesystem that really fills: a tmpfs mounted for one test (needs root).

``fill`` writes a filler file until the kernel says ENOSPC, so every later write that needs a
new block fails the way it does on a full production disk; ``free`` deletes it.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["SmallDisk", "small_disk"]


class SmallDisk:
    """A mounted tmpfs of a few megabytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler.bin"

    def fill(self) -> int:
        """Take every free block; return the bytes written."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 16, 1 << 12, 1):
                block = b"\0" * size
                while True:
                    try:
                        written += os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        """Give the space back."""
        self.filler.unlink(missing_ok=True)

    def available(self) -> int:
        """Bytes free now."""
        return shutil.disk_usage(self.path).free


def _mount_refused(path: Path, size: str) -> str | None:
    if os.geteuid() != 0:
        return "not root"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if result.returncode == 0 else result.stderr.strip() or "mount failed"


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size`` at ``path`` for the block; skip the test where that is not
    allowed (no root, no mount in this container)."""
    path.mkdir(parents=True, exist_ok=True)
    refused = _mount_refused(path, size)
    if refused is not None:
        pytest.skip(f"a full disk is simulated with a small tmpfs, which needs mount: {refused}")
    try:
        yield SmallDisk(path)
    finally:
        # Lazy: a daemon that failed the test may still hold files open there.
        subprocess.run(["umount", "-l", str(path)], check=False)
