"""A small file system that really fills: a tmpfs for the daemon's state (needs root and a
mount the container allows), for the full-disk tests and the soak.

``mount`` returns why not where it cannot mount. ``fill`` writes a filler file until the
kernel refuses, so every later write that needs a block fails as on a full production disk;
``free`` deletes it.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["SmallDisk"]


class SmallDisk:
    """A tmpfs of ``size`` at ``path`` while mounted."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size
        self.filler = path / "filler.bin"
        self.mounted = False

    def mount(self) -> str | None:
        """Mount it; return None, or why it could not be mounted."""
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return "not root"
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return result.stderr.strip() or "mount failed"
        self.mounted = True
        return None

    def unmount(self) -> None:
        if self.mounted:
            # Lazy: a daemon that was killed may still hold files open there for a moment.
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False

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
