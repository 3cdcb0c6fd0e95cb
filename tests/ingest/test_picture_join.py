"""The RTSP picture join is bounded: a source repeating one video timestamp without end (a
hostile or broken camera) does not grow the reader's memory. Real PyAV: a generated H.264
video is opened by a real ``Connection``, and its packets are fed to it (our seam) with one
picture's parts repeated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias, cast

import av
import pytest
from av.audio.stream import AudioStream
from av.packet import Packet
from av.video.stream import VideoStream

from streamguard.config.frames import FramesConfig
from streamguard.core.frame import Frame
from streamguard.ingest.frames import FrameSampler
from streamguard.ingest.protocols import SourceTarget
from streamguard.ingest.reader import MAX_PICTURE_PARTS, Connection
from streamguard.ingest.stats import Tally
from streamguard.testing.video import SceneShow

AnyPacket: TypeAlias = "Packet[AudioStream | VideoStream]"
SHOW = SceneShow(seeds=(1, 2), scene_seconds=1, audio=False)


class _Clock:
    """The media clock (our seam): a picture's media time is its offset."""

    def offset_of(self, media_time: float | None) -> float:
        return media_time or 0.0

    def hold(self, media_time: float | None, then: Callable[[datetime], None]) -> None:
        then(datetime.now(UTC))


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[tuple[Connection, FrameSampler]]:
    path = tmp_path / "show.ts"
    path.write_bytes(SHOW.encode())
    taken: list[Frame] = []
    sampler = FrameSampler(
        "cam1", datetime.now(UTC), FramesConfig(), clock=_Clock(), deliver=taken.append
    )
    target = SourceTarget(str(path), "file", False)
    with Connection(
        target,
        "cam1",
        Tally(),
        open_timeout=5,
        read_timeout=5,
        hear=lambda heard: None,
        frames=sampler,
    ) as reader:
        yield reader, sampler


def _video_packets(reader: Connection) -> list[AnyPacket]:
    packets = []
    while (packet := reader.next_packet()) is not None:
        if packet.size and isinstance(packet.stream, VideoStream):
            packets.append(packet)
    return packets


def _part(of: AnyPacket) -> AnyPacket:
    """Another part with the same timestamp (a copy of its bytes)."""
    part = cast("AnyPacket", av.Packet(bytes(of)))
    part.pts, part.dts, part.time_base = of.pts, of.dts, of.time_base
    return part


def test_a_picture_of_endless_parts_is_dropped_and_memory_stays_bounded(
    connection: tuple[Connection, FrameSampler],
) -> None:
    reader, sampler = connection
    first, *rest = _video_packets(reader)
    reader.decode(first)
    for _ in range(MAX_PICTURE_PARTS * 4):
        reader.decode(_part(first))
        assert reader.picture_held[0] <= MAX_PICTURE_PARTS
    assert reader.picture_held == (0, 0)  # dropped, and its further parts with it
    assert sampler.stats.corrupt_packets == 1
    for packet in rest:  # the pictures after it are decoded as ever
        reader.decode(packet)
    reader.drain()
    assert sampler.stats.decoded == SHOW.keyframes() - 1


def test_a_picture_over_the_byte_cap_is_dropped(
    connection: tuple[Connection, FrameSampler],
) -> None:
    reader, sampler = connection
    first, second, *_ = _video_packets(reader)
    reader.max_picture_bytes = first.size * 3  # the seam: a small cap
    reader.decode(first)
    for _ in range(5):
        reader.decode(_part(first))
        assert reader.picture_held[1] <= first.size * 3
    assert sampler.stats.corrupt_packets == 1
    reader.decode(second)
    reader.drain()
    assert sampler.stats.corrupt_packets == 1
