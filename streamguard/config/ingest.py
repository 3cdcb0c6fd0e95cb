"""How sources are read, cut and encoded."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from streamguard.config.base import Section
from streamguard.config.frames import FramesConfig

__all__ = [
    "ALWAYS_DENIED",
    "LOOPBACK",
    "PRIVATE",
    "AddressPolicyConfig",
    "BackoffConfig",
    "EncodingConfig",
    "IngestConfig",
    "SegmentSeconds",
]

SegmentSeconds = Literal[15, 30, 60]

Protocol = Literal["http", "https", "hls", "rtmp", "rtmps", "rtsp"]
NETWORK_PROTOCOLS: tuple[Protocol, ...] = ("http", "https", "hls", "rtmp", "rtmps", "rtsp")


class BackoffConfig(Section):
    initial: float = Field(1.0, gt=0, description="First reconnect delay, seconds.")
    maximum: float = Field(30.0, gt=0, description="Reconnect delays never exceed this, seconds.")
    multiplier: float = Field(2.0, ge=1, description="Each failed attempt multiplies the delay.")
    jitter: float = Field(
        0.2, ge=0, le=1, description="Random share added or removed from each delay (0.2 = ±20%)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.maximum < self.initial:
            raise ValueError("maximum must be >= initial")
        return self


class EncodingConfig(Section):
    format: Literal["wav", "flac", "mp3", "m4a"] = Field(
        "mp3",
        description=(
            "Container/codec of the evidence clips of risky segments. mp3 (LAME, about 38 ms "
            "of CPU and 61 kB per 15 s at 32 kbit/s) keeps the most clips in the evidence "
            "budget and plays everywhere; flac is lossless and costs a sixth of the CPU "
            "(about 7 ms) for four times the bytes (about 260 kB); wav is cheapest and largest."
        ),
    )
    bitrate: int = Field(
        32_000, ge=8_000, le=320_000, description="Bits per second for mp3 and m4a (AAC)."
    )


ALWAYS_DENIED: tuple[str, ...] = (
    "0.0.0.0/8",  # "this host": connecting to 0.0.0.0 reaches the host's own loopback ports
    "169.254.0.0/16",  # IPv4 link-local, where clouds put their metadata services
    "168.63.129.16/32",  # Azure's host endpoint (WireServer, IMDS proxy)
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "192.0.0.192/32",  # Oracle Cloud Infrastructure (classic) metadata
    "224.0.0.0/4",  # multicast
    "255.255.255.255/32",  # broadcast
    "::/128",  # unspecified: the host itself, like 0.0.0.0
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "ff00::/8",  # IPv6 multicast
)
"""Networks a source may never reach unless ``allow`` names them (or a more specific part)."""

LOOPBACK: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
"""The host's own loopback networks, denied when ``allow_loopback`` is off."""

PRIVATE: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT, used for cluster and VPN networks
    "fc00::/7",  # IPv6 unique local addresses
)
"""Private networks (RFC 1918, CGNAT, IPv6 ULA), denied when ``allow_private`` is off."""


def _network(value: str) -> str:
    """One network in CIDR notation (a bare address is a /32 or /128), or a clear error."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        if "host bits set" in str(exc):
            loose = ipaddress.ip_network(value.strip(), strict=False)
            raise ValueError(
                f"{value!r} has host bits set: write the network, e.g. {str(loose)!r}"
            ) from exc
        raise ValueError(
            f"{value!r} is not an IP network (write CIDR, e.g. '10.0.0.0/8' or '127.0.0.2/32')"
        ) from exc


Network = Annotated[str, AfterValidator(_network)]


class AddressPolicyConfig(Section):
    allow: list[Network] = Field(
        default_factory=list,
        description=(
            "Networks (CIDR) a source may connect to even inside a denied network, e.g. "
            "['10.20.0.0/16'] for the media servers. How allow and deny combine: an address is "
            "judged by the most specific (longest-prefix) network that contains it among all "
            "the denied ones (deny, the built-in link-local and metadata networks, and loopback "
            "and private networks when they are off) and the allowed ones; when that is an "
            "allowed network, or an allowed network is exactly as specific as the denied one, "
            "the address is allowed; an address in no listed network is allowed."
        ),
    )
    deny: list[Network] = Field(
        default_factory=list,
        description=(
            "Networks (CIDR) no source may connect to, beside the built-in ones that are always "
            "denied: link-local (169.254.0.0/16, fe80::/10, where cloud metadata services "
            "live), cloud metadata addresses (fd00:ec2::254, 100.100.100.200, 168.63.129.16, "
            "192.0.0.192), 0.0.0.0/8, ::, multicast and broadcast. ['0.0.0.0/0', '::/0'] with "
            "an allow list admits only the allowed networks."
        ),
    )
    allow_loopback: bool = Field(
        True,
        description=(
            "Whether sources may connect to the host's own loopback addresses (127.0.0.0/8, "
            "::1), where a media server may run beside the daemon, but also the control API "
            "and often the broker. Turn it off when untrusted users can attach streams "
            "through the API (the container config does)."
        ),
    )
    allow_private: bool = Field(
        True,
        description=(
            "Whether sources may connect to private networks (10/8, 172.16/12, 192.168/16, "
            "100.64/10, fc00::/7), where media servers usually run. Turn it off, and allow "
            "the media servers' networks, when untrusted users can attach streams."
        ),
    )

    @model_validator(mode="after")
    def _not_both(self) -> AddressPolicyConfig:
        both = sorted(set(self.allow) & set(self.deny))
        if both:
            raise ValueError(f"{', '.join(both)} is listed in both allow and deny")
        return self


class IngestConfig(Section):
    allowed_protocols: list[Protocol] = Field(
        default_factory=lambda: list(NETWORK_PROTOCOLS),
        description="URL schemes a stream may use. Local files need allow_local_files too.",
    )
    allow_local_files: bool = Field(
        True, description="Whether a stream may be a local file path (or file: URL)."
    )
    open_timeout: float = Field(10.0, gt=0, description="Seconds to open and probe a source.")
    read_timeout: float = Field(10.0, gt=0, description="Seconds one network read may block.")
    stall_timeout: float = Field(
        15.0, gt=0, description="Connected but no decoded audio for this long means reconnect."
    )
    segment_seconds: SegmentSeconds = Field(
        30, description="Default segment length (15, 30 or 60 s); streams may override it."
    )
    backoff: BackoffConfig = Field(
        default_factory=BackoffConfig, description="Reconnect delays of a live source."
    )
    max_reconnect_attempts: int = Field(
        0,
        ge=0,
        description=(
            "Consecutive attempts to reopen a live source that bring no audio before it is "
            "given up as failed; 0 keeps trying for as long as the stream is attached."
        ),
    )
    queue_chunks: int = Field(
        8,
        ge=1,
        description=(
            "Decoded chunks (about 1 s each) buffered between a source's reader thread and the "
            "pipeline; when full, the reader waits instead of dropping audio."
        ),
    )
    silent_minutes: float = Field(
        10.0,
        gt=0,
        description="A stream with no speech for this long is reported silent (status and event).",
    )
    encoding: EncodingConfig = Field(
        default_factory=EncodingConfig, description="How segments are encoded."
    )
    addresses: AddressPolicyConfig = Field(
        default_factory=AddressPolicyConfig,
        description="Which IP addresses sources may connect to (on every connection).",
    )
    frames: FramesConfig = Field(
        default_factory=FramesConfig,
        description="How frames are sampled from streams that carry video.",
    )
