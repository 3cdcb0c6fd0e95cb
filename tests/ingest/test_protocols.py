"""The protocol allow-list: what may be read, and what FFmpeg is then allowed to open."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamguard.config.ingest import IngestConfig
from streamguard.core.errors import ProtocolNotAllowed, SourceError
from streamguard.ingest.protocols import resolve_source


@pytest.mark.parametrize(
    ("url", "protocol"),
    [
        ("data:audio/wav;base64,UklGRg==", "data"),
        ("ftp://127.0.0.1/a.mp3", "ftp"),
        ("concat:/tmp/a.mp3|/tmp/b.mp3", "concat"),
        ("subfile:,,start,0,end,100,,:/etc/passwd", "subfile"),
        ("pipe:0", "pipe"),
        ("udp://127.0.0.1:5000", "udp"),
        ("gopher://127.0.0.1/x", "gopher"),
    ],
)
def test_protocols_outside_the_allow_list_are_refused_by_name(url: str, protocol: str) -> None:
    with pytest.raises(ProtocolNotAllowed) as caught:
        resolve_source(url, IngestConfig())
    assert caught.value.protocol == protocol
    assert repr(protocol) in str(caught.value)


def test_local_files_are_refused_when_the_config_does_not_allow_them(tmp_path: Path) -> None:
    settings = IngestConfig(allow_local_files=False)
    for source in (str(tmp_path / "a.wav"), f"file://{tmp_path}/a.wav", tmp_path / "a.wav"):
        with pytest.raises(ProtocolNotAllowed, match="'file'"):
            resolve_source(source, settings)


def test_a_protocol_missing_from_allowed_protocols_is_refused() -> None:
    settings = IngestConfig(allowed_protocols=["https"])
    with pytest.raises(ProtocolNotAllowed, match="'http'"):
        resolve_source("http://127.0.0.1/live", settings)
    with pytest.raises(ProtocolNotAllowed, match="'hls'"):
        resolve_source("https://127.0.0.1/live/index.m3u8", settings)
    with pytest.raises(ProtocolNotAllowed, match="'rtmp'"):
        resolve_source("rtmp://127.0.0.1/live/x", settings)
    assert resolve_source("https://127.0.0.1/live", settings).kind == "https"


def test_each_kind_gets_a_whitelist_that_keeps_ffmpeg_inside_it() -> None:
    settings = IngestConfig()
    http = resolve_source("http://127.0.0.1:8000/live", settings)
    # A live stream or a recording: the first connection tells.
    assert (http.kind, http.live) == ("http", None)
    assert "file" not in http.options["protocol_whitelist"].split(",")
    hls = resolve_source("http://127.0.0.1:8000/live/index.m3u8", settings)
    assert hls.kind == "hls"
    # A playlist may not send FFmpeg to local files (file: segments) or anything else;
    # HTTPS is tunnelled through the address policy's proxy (httpproxy).
    assert set(hls.options["protocol_whitelist"].split(",")) == {
        "http",
        "https",
        "tls",
        "tcp",
        "crypto",
        "httpproxy",
    }
    rtmp = resolve_source("rtmp://127.0.0.1/live/room", settings)
    assert rtmp.live is True
    assert rtmp.options["protocol_whitelist"] == "rtmp,tcp"
    rtsp = resolve_source("rtsp://127.0.0.1/room", settings)
    assert rtsp.options["rtsp_transport"] == "tcp"


def test_hls_plus_http_is_read_with_the_hls_demuxer_over_plain_http() -> None:
    target = resolve_source("hls+http://127.0.0.1:8000/live/stream", IngestConfig())
    assert (target.kind, target.url, target.format) == (
        "hls",
        "http://127.0.0.1:8000/live/stream",
        "hls",
    )


def test_local_paths_become_absolute_file_targets(tmp_path: Path) -> None:
    target = resolve_source(str(tmp_path / "room:42.wav"), IngestConfig())
    assert (target.kind, target.live) == ("file", False)
    assert target.url == str(tmp_path / "room:42.wav")
    assert target.options["protocol_whitelist"] == "file"
    assert resolve_source(f"file://{tmp_path}/a.wav", IngestConfig()).url == str(tmp_path / "a.wav")


def test_a_network_url_without_host_is_an_error() -> None:
    with pytest.raises(SourceError, match="no host"):
        resolve_source("http:///live", IngestConfig())
