"""The clip store: the URL key outlives a restart, and clips land in the served directory."""

from __future__ import annotations

import stat
import wave
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.excerpt import Excerpt
from streamguard.engines.ams.clips import URL_KEY_FILE, ClipStore, excerpt_of
from streamguard.engines.ams.delivery import ClipServer
from streamguard.state.ams_tasks import SegmentState, TrackedSegment
from tests.support.audio import make_segment, silence, tone


def config(url_key: str | None = None) -> AmsEngineConfig:
    key = SecretStr(url_key) if url_key is not None else None
    return AmsEngineConfig(delivery_listen="127.0.0.1:0", url_signing_key=key)


async def test_the_url_key_is_kept_owner_only_and_reused(tmp_path: Path) -> None:
    async with ClipStore(config(), tmp_path) as first:
        key = first.key
    async with ClipStore(config(), tmp_path) as second:
        assert second.key == key
    assert (tmp_path / URL_KEY_FILE).read_bytes() == key
    assert stat.S_IMODE((tmp_path / URL_KEY_FILE).stat().st_mode) == 0o600
    async with ClipStore(config("configured"), tmp_path) as third:
        assert third.key == b"configured"


async def test_a_clip_is_the_excerpt_written_as_wav_in_the_served_directory(
    tmp_path: Path,
) -> None:
    segment = make_segment("room-clip", 0, np.concatenate([silence(2.0), tone(3.0)]))
    whole = Excerpt.whole(segment.duration)
    async with (
        ClipServer(tmp_path / "served", b"key") as server,
        ClipStore(config(), tmp_path, server) as store,
    ):
        whole_clip, owned = await store.place(segment, whole)
        assert (whole_clip.parent, owned) == (server.root, True)
        with wave.open(str(whole_clip)) as clip:
            assert clip.getnframes() / clip.getframerate() == 5.0
        written, owned = await store.place(segment, excerpt_of(segment, [(2.0, 5.0)]))
        assert (written.parent, owned) == (server.root, True)
        with wave.open(str(written)) as clip:
            assert clip.getnframes() / clip.getframerate() == 3.0


def tracked(clip: Path) -> TrackedSegment:
    segment = make_segment("room-here", 0, tone(1.0))
    return TrackedSegment(
        segment.id, segment.stream_id, None, str(clip), True, 1.0, 0.0, SegmentState.PENDING,
        "task", None, 1, 1, 0, 0.0, 0.0, 0.0, 0.0, 0.0, "", None,
        Excerpt.whole(1.0).to_json(), segment.info().to_json(),
    )  # fmt: skip


async def test_a_clip_is_here_only_as_a_file_in_the_served_directory(tmp_path: Path) -> None:
    # Awaited: the lookup (resolve, stat) runs in a thread, the directory may be on NFS.
    segment = make_segment("room-here", 0, tone(1.0))
    (tmp_path / "elsewhere.wav").write_bytes(b"RIFF")
    async with (
        ClipServer(tmp_path / "served", b"key") as server,
        ClipStore(config(), tmp_path, server) as store,
    ):
        placed, _ = await store.place(segment, Excerpt.whole(segment.duration))
        assert await store.here(tracked(placed)) is True
        assert await store.here(tracked(server.root / "gone.wav")) is False
        assert await store.here(tracked(tmp_path / "elsewhere.wav")) is False
        assert await store.here(tracked(server.root / ".." / "elsewhere.wav")) is False
