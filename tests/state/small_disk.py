"""A small filesystem that really fills, mounted for one test (``streamguard.testing.disk``);
the test is skipped where it cannot be mounted (no root, no mount in this container)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streamguard.testing.disk import SmallDisk

__all__ = ["SmallDisk", "small_disk"]


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size`` at ``path`` for the block; skip the test where that is not
    allowed."""
    disk = SmallDisk(path, size)
    refused = disk.mount()
    if refused is not None:
        pytest.skip(f"a full disk is simulated with a small tmpfs, which needs mount: {refused}")
    try:
        yield disk
    finally:
        disk.unmount()
