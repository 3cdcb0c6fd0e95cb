"""Every connection a source makes is held to the address policy: redirects, HLS segments,
HTTPS tunnels, RTMP and RTSP. Loopback only: 127.0.0.1 is the allowed host, 127.0.0.2 (or
all of loopback, for names) the denied one; a denied server must never see a request."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamguard.config.ingest import BackoffConfig, IngestConfig
from streamguard.core.errors import SourceError
from streamguard.ingest.addresses import POLICY_REFUSAL, AddressNotAllowed
from streamguard.ingest.source import Source
from streamguard.testing.net import free_port
from tests.support.address_sites import Listener, RedirectingRtsp, Site, playlist
from tests.support.media import encode_tone
from tests.support.media_servers import HlsSegment, NginxRtmp, RtspServer, hls_segments
from tests.support.reading import read_all, read_until
from tests.support.tls import make_certificates

pytestmark = pytest.mark.slow

QUICK: dict[str, Any] = {
    "open_timeout": 5,
    "read_timeout": 5,
    "stall_timeout": 3,
    "backoff": BackoffConfig(initial=0.05, maximum=0.2),
    "max_reconnect_attempts": 2,
}
DENY_127_0_0_2 = IngestConfig(**QUICK, addresses={"deny": ["127.0.0.2/32"]})
NO_LOOPBACK = IngestConfig(**QUICK, addresses={"allow_loopback": False})
LOOPBACK_ALLOWED = IngestConfig(
    **QUICK, addresses={"allow_loopback": False, "allow": ["127.0.0.0/8"]}
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return encode_tone(
        tmp_path_factory.mktemp("media") / "tone.mp3", 440, 3, rate=16000
    ).read_bytes()


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[HlsSegment]:
    workdir = tmp_path_factory.mktemp("hls")
    return hls_segments(encode_tone(workdir / "tone.wav", 440, 4, rate=16000), workdir)


@pytest.fixture
async def allowed_site(recording: bytes) -> AsyncIterator[Site]:
    async with Site("127.0.0.1", recording) as site:
        yield site


@pytest.fixture
async def denied_site(recording: bytes) -> AsyncIterator[Site]:
    async with Site("127.0.0.2", recording) as site:
        yield site


async def refusal(url: str, settings: IngestConfig) -> AddressNotAllowed:
    """What reading ``url`` to its end raises (a recording: the first error ends it)."""
    async with Source(url, settings, "room-1", live=False) as source:
        with pytest.raises(AddressNotAllowed) as caught:
            await read_all(source)
    return caught.value


async def test_a_redirect_to_a_denied_address_is_refused_whatever_is_there(
    allowed_site: Site, denied_site: Site
) -> None:
    # An open port with audio, a 404 on an open port, a closed port: one and the same answer.
    targets = [
        denied_site.url("/room.mp3"),
        denied_site.url("/missing.mp3"),
        f"http://127.0.0.2:{free_port()}/room.mp3",
    ]
    for target in targets:
        url = allowed_site.url(f"/to?url={target}")
        caught = await refusal(url, DENY_127_0_0_2)
        assert str(caught) == f"cannot open {url}: {POLICY_REFUSAL}"
    assert denied_site.requests == 0
    assert allowed_site.requests == 3


async def test_a_redirect_between_allowed_addresses_still_plays(
    allowed_site: Site, denied_site: Site
) -> None:
    # 127.0.0.2 allowed again by a policy that allows all of loopback (and only through it).
    url = allowed_site.url(f"/to?url={denied_site.url('/room.mp3')}")
    async with Source(url, LOOPBACK_ALLOWED, "room-1") as source:
        chunks = await read_all(source)
    assert sum(len(c.samples) for c in chunks) > 2 * 16000
    assert denied_site.requests == 1


async def test_an_hls_segment_on_a_denied_address_fails_the_source(
    allowed_site: Site, denied_site: Site, segments: list[HlsSegment]
) -> None:
    names = [s.name for s in segments]
    allowed_site.segments = denied_site.segments = dict(
        zip(names, (s.data for s in segments), strict=True)
    )
    urls = [allowed_site.url(f"/hls/{names[0]}")] + [
        denied_site.url(f"/hls/{n}") for n in names[1:]
    ]
    allowed_site.playlists["mixed.m3u8"] = playlist(urls, segments)
    url = allowed_site.url("/hls/mixed.m3u8")
    caught = await refusal(url, DENY_127_0_0_2)
    assert str(caught) == f"cannot open {url}: {POLICY_REFUSAL}"
    assert denied_site.requests == 0
    # The same playlist plays to its end when the policy allows both hosts.
    async with Source(url, LOOPBACK_ALLOWED, "room-1") as source:
        chunks = await read_all(source)
    assert sum(len(c.samples) for c in chunks) > 3 * 16000
    assert denied_site.requests == len(names) - 1


async def test_a_name_is_resolved_and_checked_by_the_proxy(allowed_site: Site) -> None:
    url = f"http://localhost:{allowed_site.port}/room.mp3"
    caught = await refusal(url, NO_LOOPBACK)
    assert str(caught) == f"cannot open {url}: {POLICY_REFUSAL}"
    assert allowed_site.requests == 0


async def test_https_is_tunnelled_through_the_policy(recording: bytes, tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificates.server_cert, certificates.server_key)
    async with Site("127.0.0.1", recording, tls=tls) as site:
        async with Source(site.url("/room.mp3"), IngestConfig(**QUICK), "room-1") as source:
            chunks = await read_all(source)
        assert sum(len(c.samples) for c in chunks) > 2 * 16000
        assert site.requests == 1
        # By name, with loopback denied: the CONNECT is refused, the server sees nothing.
        url = f"https://localhost:{site.port}/room.mp3"
        caught = await refusal(url, NO_LOOPBACK)
        assert str(caught) == f"cannot open {url}: {POLICY_REFUSAL}"
        assert site.requests == 1


@pytest.mark.parametrize("scheme", ["rtmp", "rtmps", "rtsp"])
async def test_rtmp_and_rtsp_by_a_denied_name_never_connect(scheme: str) -> None:
    async with Listener() as listener:
        url = f"{scheme}://localhost:{listener.port}/live/room"
        async with Source(url, NO_LOOPBACK, "room-1") as source:
            # Live: retried like any failure, until max_reconnect_attempts gives it up.
            with pytest.raises(SourceError) as caught:
                await read_all(source)
        assert str(caught.value).endswith(f"{url}: {POLICY_REFUSAL}")
        assert source.stats.last_error == f"cannot open {url}: {POLICY_REFUSAL}"
        assert listener.connections == 0


@pytest.fixture
def nginx_rtmp(tmp_path: Path) -> Iterator[NginxRtmp]:
    server = NginxRtmp(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_rtmp_by_name_plays_from_the_pinned_address(
    nginx_rtmp: NginxRtmp, tmp_path: Path
) -> None:
    nginx_rtmp.publish(encode_tone(tmp_path / "tone.m4a", 440, 20, rate=44100), "room-7")
    url = f"rtmp://localhost:{nginx_rtmp.port}/live/room-7"
    async with Source(url, LOOPBACK_ALLOWED, "room-7") as source:
        chunks = await read_until(source, lambda chunks: len(chunks) >= 3)
    assert len(chunks) >= 3


async def test_rtsp_by_name_plays_from_the_pinned_address(tmp_path: Path) -> None:
    server = RtspServer(encode_tone(tmp_path / "tone.wav", 440, 20, rate=48000), tmp_path)
    server.start()
    try:
        url = f"rtsp://localhost:{server.port}/room"
        async with Source(url, LOOPBACK_ALLOWED, "room-rtsp") as source:
            chunks = await read_until(source, lambda chunks: len(chunks) >= 3)
        assert len(chunks) >= 3
    finally:
        server.kill()


async def test_no_proxy_in_the_environment_opens_no_way_around_the_policy(
    allowed_site: Site, denied_site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("no_proxy", "*")  # FFmpeg would connect to every host directly
    url = allowed_site.url(f"/to?url={denied_site.url('/room.mp3')}")
    caught = await refusal(url, DENY_127_0_0_2)
    assert str(caught) == f"cannot open {url}: {POLICY_REFUSAL}"
    assert denied_site.requests == 0


async def test_an_rtsp_redirect_to_a_denied_address_is_refused() -> None:
    async with (
        Listener("127.0.0.2") as denied,
        RedirectingRtsp(f"rtsp://127.0.0.2:{denied.port}/room") as front,
        Source(front.url, DENY_127_0_0_2, "room-rtsp", live=False) as source,
    ):
        with pytest.raises(AddressNotAllowed) as caught:
            await read_all(source)
    assert str(caught.value) == f"cannot open {front.url}: {POLICY_REFUSAL}"
    assert denied.connections == 0


async def test_an_rtsp_redirect_to_an_allowed_address_plays_through_the_relay(
    tmp_path: Path,
) -> None:
    server = RtspServer(encode_tone(tmp_path / "tone.wav", 440, 20, rate=48000), tmp_path)
    server.start()
    try:
        async with (
            RedirectingRtsp(f"rtsp://localhost:{server.port}/room") as front,
            Source(front.url, IngestConfig(**QUICK), "room-rtsp") as source,
        ):
            chunks = await read_until(source, lambda chunks: len(chunks) >= 3)
        assert len(chunks) >= 3
    finally:
        server.kill()


def encrypted_hls(workdir: Path) -> tuple[str, dict[str, bytes]]:
    """An AES-128 HLS recording: its playlist (key URI ``KEY-URI``) and files by name."""
    (workdir / "k.key").write_bytes(bytes(range(16)))
    (workdir / "keyinfo").write_text(f"KEY-URI\n{workdir / 'k.key'}\n", encoding="utf-8")
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", "sine=frequency=440:sample_rate=16000:duration=4", "-c:a", "aac"),
            *("-f", "hls", "-hls_time", "1", "-hls_list_size", "0"),
            *("-hls_key_info_file", str(workdir / "keyinfo")),
            *("-hls_segment_filename", str(workdir / "e%d.ts"), str(workdir / "index.m3u8")),
        ],
        check=True,
    )
    files = {p.name: p.read_bytes() for p in workdir.iterdir() if p.suffix in (".ts", ".key")}
    return (workdir / "index.m3u8").read_text(encoding="utf-8"), files


async def test_an_hls_key_on_a_denied_address_fails_the_source(
    allowed_site: Site, denied_site: Site, tmp_path: Path
) -> None:
    text, files = encrypted_hls(tmp_path)
    allowed_site.segments = denied_site.segments = files
    allowed_site.playlists["denied-key.m3u8"] = text.replace(
        "KEY-URI", denied_site.url("/hls/k.key")
    )
    allowed_site.playlists["own-key.m3u8"] = text.replace("KEY-URI", allowed_site.url("/hls/k.key"))
    url = allowed_site.url("/hls/denied-key.m3u8")
    caught = await refusal(url, DENY_127_0_0_2)
    assert str(caught) == f"cannot open {url}: {POLICY_REFUSAL}"
    assert denied_site.requests == 0
    # The same recording with its key on the allowed host decrypts and plays.
    own = allowed_site.url("/hls/own-key.m3u8")
    async with Source(own, DENY_127_0_0_2, "room-1") as source:
        chunks = await read_all(source)
    assert sum(len(c.samples) for c in chunks) > 3 * 16000
