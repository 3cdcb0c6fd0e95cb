"""Owner-only files and directories: the database, clips and evidence hold what rooms said.

Under systemd the unit's ``StateDirectory`` and ``UMask`` protect them; run any other way
(a shell, a container, a test) the process umask is usually 022, which would leave them
world-readable. So every directory the daemon makes for state is created 0700 (each missing
parent too, unlike ``mkdir -p``) and every file it writes there 0600, whatever the umask.
Directories that already exist are the operator's and are left as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file", "write_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as owner-only directories; return it."""
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made meanwhile by another thread or process: theirs to set
        os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only its owner can read or write it; return it.

    For files another library writes into (SQLite, the encoder): created empty here first,
    they keep this mode when it opens them, since opening never loosens a file's mode.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (replaced if there) as an owner-only file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(data)
