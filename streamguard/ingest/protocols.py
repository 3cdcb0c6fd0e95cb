"""Which sources a stream may read: the protocol allow-list, checked before FFmpeg sees a URL.

Two layers keep a source inside what the config allows. :func:`resolve_source` refuses a URL
or path whose protocol is not allowed (``data:``, ``ftp:``, ``concat:``, ``subfile:``, a local
file when ``allow_local_files`` is off ...) with :class:`ProtocolNotAllowed` naming it. Then
the ``protocol_whitelist`` option it returns stops FFmpeg itself from wandering to other
protocols while it reads (an HLS playlist naming ``file:`` segments, a redirect to ``ftp:``).

Schemes are case-insensitive (RFC 3986) but FFmpeg's protocol names are not: ``HTTP://`` is
checked as ``http`` and handed to FFmpeg as ``http://``, never as a protocol it cannot find.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from streamguard.config.ingest import IngestConfig
from streamguard.core.errors import ProtocolNotAllowed, SourceError
from streamguard.ingest.addresses import AddressNotAllowed, AddressPolicy, literal_address

__all__ = ["SourceKind", "SourceTarget", "resolve_source"]

SourceKind = Literal["http", "https", "hls", "rtmp", "rtmps", "rtsp", "file"]

# The FFmpeg protocols each kind of source needs underneath, and nothing else. HTTP sources
# may turn out to be HLS playlists (FFmpeg probes the content, not the name), so they get
# what HLS needs (crypto for AES-128 segments); the RTSP demuxer opens rtp/udp/tcp itself.
# HTTPS goes through the address policy's proxy as a CONNECT tunnel: FFmpeg's httpproxy.
_WHITELIST: dict[SourceKind, tuple[str, ...]] = {
    "http": ("http", "tcp", "crypto"),
    "https": ("https", "tls", "tcp", "crypto", "httpproxy"),
    "hls": ("http", "https", "tls", "tcp", "crypto", "httpproxy"),
    "rtmp": ("rtmp", "tcp"),
    "rtmps": ("rtmps", "tls", "tcp", "httpproxy"),  # through the address policy's proxy
    "rtsp": ("rtsp", "rtp", "udp", "tcp"),
    "file": ("file",),
}

_NETWORK_SCHEMES = frozenset({"http", "https", "rtmp", "rtmps", "rtsp"})


@dataclass(frozen=True, slots=True)
class SourceTarget:
    """A source the config allows, ready for ``av.open(url, format=..., options=...)``.

    ``live`` is true for sources that are live by nature (RTMP, RTSP): they are reopened when
    they end, since a dropped connection ends the demuxer exactly like the end of a file does.
    It is false for local files, and ``None`` for HTTP(S) and HLS, which may be a live stream
    or a recording: the first connection tells (see
    :attr:`Connection.looks_live <streamguard.ingest.reader.Connection.looks_live>`).
    """

    url: str
    kind: SourceKind
    live: bool | None
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def _allowed_names(settings: IngestConfig) -> frozenset[str]:
    names: set[str] = set(settings.allowed_protocols)
    if settings.allow_local_files:
        names.add("file")
    return frozenset(names)


def _target(
    kind: SourceKind, url: str, *, live: bool | None, fmt: str | None = None
) -> SourceTarget:
    options = {"protocol_whitelist": ",".join(_WHITELIST[kind])}
    if live is not False:
        # Probing stops at 0.5 s of media instead of 5 s: an audio-only live stream says all
        # it has to say in its first frames, and every second of probing is latency.
        options["analyzeduration"] = "500000"
    if kind == "rtsp":
        # Interleaved TCP: one connection the read timeout covers, no UDP ports to open.
        options["rtsp_transport"] = "tcp"
    return SourceTarget(url=url, kind=kind, live=live, format=fmt, options=options)


def resolve_source(source: str | os.PathLike[str], settings: IngestConfig) -> SourceTarget:
    """Check a URL or local path against the allow-list and say how to open it.

    Raises :class:`ProtocolNotAllowed` (naming the protocol) for anything the config does not
    allow, :class:`SourceError` for a network URL without a host (or with a bad port), and
    :class:`~streamguard.ingest.addresses.AddressNotAllowed` for a host that is an IP address
    the address policy denies (a name is checked when the source connects).
    """
    allowed = _allowed_names(settings)
    if isinstance(source, os.PathLike):
        return _local_file(Path(source), allowed)
    text = source.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    # FFmpeg looks protocols up by exact name: "HTTP://" would be "Protocol not found".
    text = scheme + text[len(parts.scheme) :]
    if not scheme:
        return _local_file(Path(text), allowed)
    if scheme == "file":
        return _local_file(Path(parts.path), allowed)
    if scheme in ("hls+http", "hls+https"):
        # FFmpeg's old hls+http protocol is not built into PyAV: read the playlist over
        # plain http(s) and force the HLS demuxer instead.
        _require("hls", allowed)
        inner = text.split("+", 1)[1]
        _require_host(inner, settings)
        return _target("hls", inner, live=None, fmt="hls")
    if scheme not in _NETWORK_SCHEMES:
        raise ProtocolNotAllowed(scheme, allowed)
    _require_host(text, settings)
    if scheme in ("http", "https") and parts.path.lower().endswith(".m3u8"):
        _require("hls", allowed)
        return _target("hls", text, live=None)
    _require(scheme, allowed)
    kind: SourceKind = scheme  # type: ignore[assignment]  # checked against _NETWORK_SCHEMES
    return _target(kind, text, live=None if scheme in ("http", "https") else True)


def _local_file(path: Path, allowed: frozenset[str]) -> SourceTarget:
    _require("file", allowed)
    # An absolute path never starts with a scheme-like prefix, so FFmpeg cannot read
    # "concat:x" or "subfile:..." into a path that merely contains a colon.
    return _target("file", str(path.expanduser().absolute()), live=False)


def _require(protocol: str, allowed: frozenset[str]) -> None:
    if protocol not in allowed:
        raise ProtocolNotAllowed(protocol, allowed)


def _require_host(url: str, settings: IngestConfig) -> None:
    parts = urlsplit(url)
    if not parts.hostname:
        raise SourceError(f"source URL {url!r} has no host")
    try:
        parts.port  # noqa: B018  # urllib checks the port only when asked
    except ValueError as exc:
        raise SourceError(f"source URL {url!r} has an invalid port") from exc
    address = literal_address(parts.hostname)
    if address is not None and not AddressPolicy.of(settings.addresses).allows(address):
        raise AddressNotAllowed(url)
