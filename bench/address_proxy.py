"""What the address policy's proxy costs: decoding a loopback HTTP stream with and without it.

Run: ``.venv/bin/python -m bench.address_proxy`` (``--help`` for sizes). It prints figures; it
asserts nothing. A 128 kbit/s stereo MP3 recording (generated with the ffmpeg CLI) is served
by aiohttp on 127.0.0.1 and read as fast as it goes by the source's own ``Connection``
(open, demux, decode, resample to 16 kHz mono), alternately straight from the server and
through a :class:`~streamguard.ingest.proxy.PolicyProxy` on the same event loop, the way a
``Source`` reads HTTP. CPU is the whole process's (``time.process_time``): the reader
thread, the proxy relaying on the event loop and the server, which is the same in both runs.
Rounds alternate so that a machine shared with other work hurts both alike; the ratio of
the medians is the figure to quote. A second pair of rows fetches the same bytes without
decoding them (a raw HTTP GET on the event loop, direct and through the proxy), which
isolates what relaying costs per MB.

``--live N`` also reads N paced live streams (the same MP3 broadcast at real-time pace by
``bench.ingest``'s Icecast-like server in its own process), each through its own proxy on
this event loop, then the same N straight from the server, alternately for ``--rounds``
rounds. The event loop thread's CPU (``time.thread_time`` on the loop) is then the proxies'
alone: it is reported per stream, as a share of a core, beside the whole process's.

``--rtsp N`` passes N interleaved RTP frames (200 and 1400 bytes) from a loopback RTSP server
to a client, through an :class:`~streamguard.ingest.rtsp_relay.RtspRelay` and straight:
the difference per frame is what the relay's parsing of the server's side costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

from aiohttp import web

from bench.ingest import LiveServer
from streamguard.config.ingest import IngestConfig
from streamguard.ingest.addresses import AddressPolicy
from streamguard.ingest.protocols import SourceTarget, resolve_source
from streamguard.ingest.proxy import PolicyProxy
from streamguard.ingest.reader import Connection
from streamguard.ingest.resampling import Heard
from streamguard.ingest.rtsp_relay import RtspRelay
from streamguard.ingest.stats import Tally
from streamguard.testing.net import free_port


def encode(path: Path, seconds: int) -> bytes:
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"),
            *("-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", str(path)),
        ],
        check=True,
    )
    return path.read_bytes()


def read(target: SourceTarget) -> tuple[float, float, int]:
    """Read ``target`` to its end: (process CPU seconds, wall seconds, 16 kHz samples)."""
    cpu, wall, samples = time.process_time(), time.perf_counter(), 0

    def hear(heard: Heard) -> None:
        nonlocal samples
        samples += sum(len(p) for p in heard.pcm)

    with Connection(
        target, "bench", Tally(), open_timeout=10, read_timeout=10, hear=hear
    ) as connection:
        while (packet := connection.next_packet()) is not None:
            connection.decode(packet)
        connection.drain()
    return time.process_time() - cpu, time.perf_counter() - wall, samples


async def fetch(port: int, via: int | None) -> tuple[float, int]:
    """GET the recording (through the proxy on ``via``): (process CPU seconds, bytes)."""
    cpu = time.process_time()
    reader, writer = await asyncio.open_connection("127.0.0.1", via or port)
    target = f"http://127.0.0.1:{port}/room.mp3" if via else "/room.mp3"
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    size = 0
    while data := await reader.read(65536):
        size += len(data)
    writer.close()
    return time.process_time() - cpu, size


async def run(seconds: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        body = encode(Path(workdir) / "room.mp3", seconds)
    app = web.Application()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="audio/mpeg")

    app.router.add_get("/room.mp3", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = IngestConfig()
    direct = resolve_source(f"http://127.0.0.1:{port}/room.mp3", settings)
    policy = AddressPolicy.of(settings.addresses)
    figures: dict[str, list[float]] = {"direct": [], "proxied": [], "get": [], "get+proxy": []}
    try:
        async with PolicyProxy(policy, stream_id="bench", connect_timeout=10) as proxy:
            proxied = replace(direct, options={**direct.options, "http_proxy": proxy.url})
            for _ in range(rounds):
                for name, target in (("direct", direct), ("proxied", proxied)):
                    cpu, _wall, samples = await asyncio.to_thread(read, target)
                    assert samples > 0.9 * seconds * 16000, samples
                    figures[name].append(cpu)
                figures["get"].append((await fetch(port, None))[0])
                figures["get+proxy"].append((await fetch(port, proxy.port))[0])
    finally:
        await runner.cleanup()
    report(figures, seconds, len(body))


def report(figures: dict[str, list[float]], seconds: int, size: int) -> None:
    print("Shared machine (2 cores, other agents running): read the ratio, not the absolutes.")
    print(f"{seconds} s of 128 kbit/s stereo MP3 ({size / 1e6:.1f} MB), read as fast as it goes")
    medians = {name: statistics.median(cpus) for name, cpus in figures.items()}
    for name, cpus in figures.items():
        rounds = ", ".join(f"{c * 1000:.0f}" for c in cpus)
        print(f"  {name:9} process CPU median {medians[name] * 1000:7.1f} ms (rounds: {rounds})")
    decode = medians["direct"] / seconds * 60 * 1000
    extra = (medians["proxied"] - medians["direct"]) / seconds * 60 * 1000
    relay = (medians["get+proxy"] - medians["get"]) / (size / 1e6) * 1000
    print(f"  decoding direct: {decode:.1f} ms CPU per audio minute")
    print(
        f"  proxied / direct = {medians['proxied'] / medians['direct']:.3f} "
        f"({extra:+.2f} ms CPU per audio minute)"
    )
    print(
        f"  relaying alone (raw GET through the proxy minus without): {relay:.2f} ms CPU per MB, "
        f"{relay * size / 1e6 / seconds * 60:.2f} ms per audio minute at 128 kbit/s"
    )


def read_live(target: SourceTarget, stop: threading.Event) -> None:
    """Read a live ``target`` until ``stop``."""
    with Connection(
        target, "bench", Tally(), open_timeout=10, read_timeout=10, hear=lambda _: None
    ) as connection:
        while not stop.is_set() and (packet := connection.next_packet()) is not None:
            connection.decode(packet)


async def live_round(url: str, streams: int, seconds: float, proxied: bool) -> tuple[float, float]:
    """``streams`` live readers for ``seconds`` after a warm-up: (loop thread CPU, process
    CPU), each per stream as a share of a core."""
    settings = IngestConfig()
    policy = AddressPolicy.of(settings.addresses)
    direct = resolve_source(url, settings)
    stop = threading.Event()
    async with contextlib.AsyncExitStack() as stack:
        targets = []
        for i in range(streams):
            if proxied:
                proxy = await stack.enter_async_context(
                    PolicyProxy(policy, stream_id=f"bench-{i}", connect_timeout=10)
                )
                targets.append(replace(direct, options={**direct.options, "http_proxy": proxy.url}))
            else:
                targets.append(direct)
        # Threads of their own: the proxies resolve in the loop's default executor.
        pool = stack.enter_context(ThreadPoolExecutor(streams, thread_name_prefix="bench.live"))
        loop = asyncio.get_running_loop()
        readers = [loop.run_in_executor(pool, read_live, target, stop) for target in targets]
        try:
            await asyncio.sleep(3.0)  # warm-up: connections made, the burst relayed
            loop_cpu, cpu = time.thread_time(), time.process_time()
            await asyncio.sleep(seconds)
            loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
        finally:
            stop.set()
            await asyncio.gather(*readers)
    return loop_cpu / seconds / streams, cpu / seconds / streams


def live_part(streams: int, seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        media = Path(workdir) / "live.mp3"
        encode(media, int(rounds * 2 * (seconds + 5) + 60))
        with LiveServer(media, rounds * 2 * (seconds + 5) + 60) as server:
            figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for _ in range(rounds):
                for proxied in (True, False):
                    figure = asyncio.run(live_round(server.url, streams, seconds, proxied))
                    figures[proxied].append(figure)
    print(f"{streams} paced live streams (128 kbit/s MP3), {seconds:g} s a round, {rounds} rounds")
    for proxied, rows in figures.items():
        loop = statistics.median(r[0] for r in rows) * 100
        whole = statistics.median(r[1] for r in rows) * 100
        each = ", ".join(f"{r[0] * 100:.3f}" for r in rows)
        print(
            f"  {'proxied' if proxied else 'direct ':7} per stream: event loop {loop:.3f} % of a "
            f"core (rounds: {each}), whole process {whole:.3f} %"
        )


async def rtsp_pass(frames: int, size: int, relayed: bool) -> float:
    """Process CPU seconds to pass ``frames`` interleaved RTP frames of ``size`` bytes from a
    loopback RTSP server to a client (through an :class:`RtspRelay` when ``relayed``)."""
    frame = b"$\x00" + size.to_bytes(2, "big") + bytes(size)
    answer = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 1\r\n\r\n"

    async def play(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        for start in range(0, frames, 64):
            writer.write(frame * min(64, frames - start))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(play, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    policy = AddressPolicy.of(IngestConfig().addresses)
    async with server, RtspRelay(policy, stream_id="bench", connect_timeout=10) as relay:
        relay.aim([ip_address("127.0.0.1")], port)
        cpu = time.process_time()
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port if relayed else port)
        got = 0
        while data := await reader.read(65536):
            got += len(data)
        writer.close()
        cpu = time.process_time() - cpu
    assert got == len(answer) + frames * len(frame), got
    return cpu


def rtsp_part(frames: int, rounds: int) -> None:
    print(f"RTSP interleaved frames through the relay, {frames} frames a pass, {rounds} rounds")
    for size in (200, 1400):
        figures: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(rounds):
            for relayed in (True, False):
                figures[relayed].append(asyncio.run(rtsp_pass(frames, size, relayed)))
        relayed_cpu, direct_cpu = (statistics.median(figures[k]) for k in (True, False))
        print(
            f"  {size:5} B frames: relayed {relayed_cpu * 1000:.0f} ms, direct "
            f"{direct_cpu * 1000:.0f} ms: the relay {(relayed_cpu - direct_cpu) / frames * 1e6:.1f}"
            " us CPU per frame"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=600, help="length of the recording")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--live", type=int, default=0, help="also N paced live streams")
    parser.add_argument("--live-seconds", type=float, default=20.0, help="measured per round")
    parser.add_argument("--rtsp", type=int, default=0, help="also N RTSP interleaved frames")
    parser.add_argument("--skip-files", action="store_true", help="only the live part")
    args = parser.parse_args()
    if not args.skip_files:
        asyncio.run(run(args.seconds, args.rounds))
    if args.rtsp:
        rtsp_part(args.rtsp, args.rounds)
    if args.live:
        live_part(args.live, args.live_seconds, args.rounds)


if __name__ == "__main__":
    main()
