"""Evidence clip encoders: CPU and bytes per 15 s segment: ``python -m bench.encoders``.

The segment is 15 s of the fleet bench's room (speech turns and pauses, 16 kHz mono). The
formats the product writes go through ``encode_pcm`` itself (``wav``, ``flac``, ``mp3``,
``m4a``); the other rows are PyAV encoders the product could use and does not, measured
the same way (frames of the codec's own size), for the record. CPU is
``time.process_time()`` of this process, the mean of ``--repeats`` encodes after one to
warm up. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import av
import numpy as np

from bench.soak.media import marked_room
from streamguard.core.chunk import SAMPLE_RATE, Pcm
from streamguard.ingest.encoder import ClipFormat, encode_pcm

OTHERS: dict[str, tuple[str, str, int | None, dict[str, str]]] = {
    # name: (container, codec, bit rate, codec options)
    "opus 24k (ogg, lowdelay, compression 0)": (
        "ogg",
        "libopus",
        24_000,
        {"application": "lowdelay", "compression_level": "0"},
    ),
    "opus 24k (ogg, default settings)": ("ogg", "libopus", 24_000, {}),
    "aac 32k (m4a, FFmpeg's fast coder)": ("ipod", "aac", 32_000, {"aac_coder": "fast"}),
    "mp2 32k (MPEG-1/2 layer II)": ("mp2", "mp2", 32_000, {}),
}


def encode_other(
    samples: Pcm, path: Path, spec: tuple[str, str, int | None, dict[str, str]]
) -> None:
    container_format, codec, bit_rate, options = spec
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        assert isinstance(stream, av.AudioStream)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        stream.codec_context.options = options
        size = stream.codec_context.frame_size or 1152
        for start in range(0, len(samples), size):
            piece = np.ascontiguousarray(samples[start : start + size]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def timed(encode: Callable[[], object], repeats: int) -> float:
    encode()
    started = time.process_time()
    for _ in range(repeats):
        encode()
    return (time.process_time() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    room = marked_room()
    segment = np.tile(room, 2)[: 15 * SAMPLE_RATE]
    print("| encoder | CPU per 15 s segment | bytes |")
    print("|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        formats: tuple[ClipFormat, ...] = ("wav", "flac", "mp3", "m4a")
        for fmt in formats:
            path = Path(tmp) / f"clip.{fmt}"
            cpu = timed(partial(encode_pcm, segment, path, fmt), args.repeats)
            label = f"{fmt} (product, encode_pcm{', 32 kbit/s' if fmt in ('mp3', 'm4a') else ''})"
            print(f"| {label} | {cpu * 1000:.1f} ms | {path.stat().st_size / 1000:.0f} kB |")
        for name, spec in OTHERS.items():
            path = Path(tmp) / f"other.{spec[0]}"
            cpu = timed(partial(encode_other, segment, path, spec), args.repeats)
            print(f"| {name} | {cpu * 1000:.1f} ms | {path.stat().st_size / 1000:.0f} kB |")


if __name__ == "__main__":
    main()
