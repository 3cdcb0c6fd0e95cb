"""``ClipStore``: where the clips AMS judges live, and how AMS fetches them.

AMS fetches each task's audio by URL, so every clip sits in the clip server's directory: the
caller's file when it is already there, else a copy of it, else (no file, or only the speech
of the segment is sent) a WAV of the excerpt written here. Clips the store made are its own
and are deleted once the segment's verdict is stored; the caller's stay.

The URLs are signed with a key that is configured, or kept in the state directory (created
once, owner-only) so that URLs and callback signatures given out before a restart stay
valid after it; random per process only without a state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import wave
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.chunk import SAMPLE_RATE
from streamguard.core.excerpt import Excerpt
from streamguard.core.private import private_dir, private_file
from streamguard.core.segment import Segment
from streamguard.engines.ams.delivery import ClipServer
from streamguard.state.ams_tasks import TrackedSegment

__all__ = ["URL_KEY_FILE", "ClipStore", "excerpt_of"]

URL_KEY_FILE = "ams-url-key"
"""In the state directory: the clip URL key when none is configured."""


def excerpt_of(segment: Segment, regions: Sequence[tuple[float, float]] | None) -> Excerpt:
    """The part of the segment to send: ``regions`` clamped to it (the whole by default)."""
    if regions is None:
        return Excerpt.whole(segment.duration)
    excerpt = Excerpt.around(regions, segment.duration, pad=0.0)
    if excerpt is None:
        raise ValueError(f"speech regions {regions} hold no audio of segment {segment.id}")
    return excerpt


def _write_wav(segment: Segment, path: Path, excerpt: Excerpt) -> None:
    with wave.open(str(private_file(path)), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(excerpt.samples(segment.samples).astype("<i2").tobytes())


class ClipStore:
    """The clip directory and the URL key; ``async with`` loads the key and starts the server.

    ``server`` is built from ``config`` unless given (then the caller owns it).
    """

    def __init__(
        self, config: AmsEngineConfig, state_dir: Path | None, server: ClipServer | None = None
    ) -> None:
        self._config = config
        self._state_dir = state_dir or Path(".")
        self._key_file = state_dir / URL_KEY_FILE if state_dir is not None else None
        self._key = b""
        self._server = server
        self._stack = AsyncExitStack()

    @property
    def server(self) -> ClipServer:
        """The clip server in use (given, or built from the config on entry)."""
        assert self._server is not None, "the clip store is not open"
        return self._server

    @property
    def key(self) -> bytes:
        """The clip URL key (also the root of the callback Seed); empty until entered."""
        return self._key

    async def __aenter__(self) -> Self:
        self._key = await asyncio.to_thread(self._load_key)
        if self._server is None:
            self._server = await self._stack.enter_async_context(self._build_server())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def _load_key(self) -> bytes:
        configured = self._config.url_signing_key
        if configured is not None:
            return configured.get_secret_value().encode()
        if self._key_file is None:
            return secrets.token_hex(32).encode()
        with contextlib.suppress(FileNotFoundError):
            return self._key_file.read_bytes()
        key = secrets.token_hex(32).encode()
        private_dir(self._key_file.parent)
        with os.fdopen(
            os.open(self._key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"
        ) as out:
            out.write(key)
        return key

    def _build_server(self) -> ClipServer:
        config = self._config
        host, _, port = config.delivery_listen.rpartition(":")
        return ClipServer(
            config.clips_dir or self._state_dir / "ams-clips",
            self._key,
            public_base_url=config.public_base_url,
            ttl=config.url_ttl,
            host=host,
            port=int(port),
        )

    async def place(self, segment: Segment, excerpt: Excerpt) -> tuple[Path, bool]:
        """The excerpt written as WAV inside the served directory, and that the store owns
        it (so deletes it once the verdict is stored)."""
        target = self.server.root / f"{segment.id}.wav"
        await asyncio.to_thread(_write_wav, segment, target, excerpt)
        return target, True

    def url_for(self, row: TrackedSegment) -> str:
        """The signed URL at which AMS fetches the segment's clip."""
        return self.server.url_for(Path(row.clip))

    async def here(self, row: TrackedSegment) -> bool:
        """Whether the segment's clip is in this store's served directory (in fleet mode a
        task another instance tracked has its clip on that instance). Looked up in a thread:
        the directory may be on shared storage (NFS)."""
        root = self.server.root
        path = Path(row.clip)
        return await asyncio.to_thread(
            lambda: path.resolve().is_relative_to(root) and path.is_file()
        )

    async def discard(self, row: TrackedSegment) -> None:
        """Delete the segment's clip if the store made it (its verdict is stored)."""
        if row.owned_clip:
            await asyncio.to_thread(Path(row.clip).unlink, missing_ok=True)
