"""The address policy's judgement, its config, and what is refused before anything connects.
No connection is made here: addresses are judged, URLs checked, names never resolved."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from streamguard.config.ingest import AddressPolicyConfig, IngestConfig
from streamguard.config.loading import load_config
from streamguard.core.errors import ConfigError, SourceError
from streamguard.ingest.addresses import POLICY_REFUSAL, AddressNotAllowed, AddressPolicy
from streamguard.ingest.guard import AddressGuard
from streamguard.ingest.protocols import resolve_source


def policy(**settings: object) -> AddressPolicy:
    return AddressPolicy.of(AddressPolicyConfig.model_validate(settings))


def allowed(p: AddressPolicy, address: str) -> bool:
    return p.allows(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack ... metadata
        "169.254.0.23",  # Tencent Cloud metadata
        "169.254.170.2",  # ECS task metadata
        "fd00:ec2::254",  # AWS metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure host endpoint
        "fe80::1",
        "0.0.0.0",  # connecting to it reaches the host's own loopback ports
        "::",
        "224.0.0.1",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    ],
)
def test_link_local_and_metadata_addresses_are_denied_by_default(address: str) -> None:
    assert not allowed(policy(), address)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.10", "8.8.8.8"])
def test_loopback_private_and_public_addresses_are_allowed_by_default(address: str) -> None:
    assert allowed(policy(), address)


def test_loopback_and_private_networks_can_be_turned_off() -> None:
    strict = policy(allow_loopback=False, allow_private=False)
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "10.0.0.1", "fd12::1"):
        assert not allowed(strict, address), address
    assert allowed(strict, "203.0.113.7")


def test_the_most_specific_network_decides() -> None:
    # A denied host inside allowed loopback; an allowed subnet inside a denied network.
    p = policy(deny=["127.0.0.2/32", "10.0.0.0/8"], allow=["10.20.0.0/16"])
    assert not allowed(p, "127.0.0.2")
    assert allowed(p, "127.0.0.1")
    assert allowed(p, "10.20.3.4")
    assert not allowed(p, "10.21.3.4")


def test_an_allow_list_can_be_the_only_way_out() -> None:
    p = policy(deny=["0.0.0.0/0", "::/0"], allow=["198.51.100.0/24"])
    assert allowed(p, "198.51.100.9")
    assert not allowed(p, "198.51.101.9")
    assert not allowed(p, "2001:db8::1")


def test_an_allow_entry_as_specific_as_a_built_in_denial_reopens_it() -> None:
    assert allowed(policy(allow_loopback=False, allow=["127.0.0.0/8"]), "127.0.0.2")
    assert allowed(policy(allow=["169.254.0.0/16"]), "169.254.10.10")
    # ... but a broader one does not: the metadata address stays denied.
    assert not allowed(policy(allow=["0.0.0.0/0"]), "169.254.169.254")


def test_a_name_that_resolves_to_any_denied_address_is_not_used_at_all() -> None:
    p = policy(deny=["127.0.0.2/32"])
    with pytest.raises(AddressNotAllowed, match=f"^{POLICY_REFUSAL}$"):
        p.checked(["127.0.0.1", "127.0.0.2"])
    assert [str(a) for a in p.checked(["127.0.0.1", "127.0.0.1", "::1"])] == ["127.0.0.1", "::1"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "HTTP://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",  # 169.254.169.254 as one number, as the resolver reads it
        "hls+http://100.100.100.200/live.m3u8",
        "rtmp://0.0.0.0/live/room",
        "rtsp://[fe80::1]:554/room",
    ],
)
def test_a_url_naming_a_denied_address_is_refused_before_anything_connects(url: str) -> None:
    with pytest.raises(AddressNotAllowed, match=f": {POLICY_REFUSAL}$"):
        resolve_source(url, IngestConfig())


def test_a_denied_loopback_address_is_refused_and_an_allowed_one_is_not() -> None:
    settings = IngestConfig.model_validate({"addresses": {"deny": ["127.0.0.2/32"]}})
    with pytest.raises(AddressNotAllowed):
        resolve_source("http://127.0.0.2:8000/live.mp3", settings)
    assert resolve_source("http://127.0.0.1:8000/live.mp3", settings).kind == "http"
    # A name is judged when the source connects (the resolver may answer differently then).
    assert resolve_source("http://metadata.internal/x", settings).kind == "http"


def test_a_bad_port_is_a_source_error_naming_the_url() -> None:
    with pytest.raises(Exception, match="invalid port"):
        resolve_source("http://127.0.0.1:99999/live.mp3", IngestConfig())


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('deny = ["10.0.0.0/33"]', "ingest.addresses.deny[0]", "is not an IP network"),
        ('allow = ["media-server"]', "ingest.addresses.allow[0]", "is not an IP network"),
        ('deny = ["10.1.2.3/8"]', "ingest.addresses.deny[0]", "'10.0.0.0/8'"),
        ('deny = ["10.0.0.0/8"]\nallow = ["10.0.0.0/8"]', "ingest.addresses", "both"),
        ("allow_loopback = 2", "ingest.addresses.allow_loopback", ""),
        ("denied = []", "ingest.addresses.denied", ""),
    ],
)
def test_a_bad_policy_is_a_config_error_naming_the_key(
    tmp_path: Path, body: str, key: str, words: str
) -> None:
    path = tmp_path / "streamguard.toml"
    path.write_text(f"[ingest.addresses]\n{body}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [p for p in caught.value.problems if p.path == key]
    assert problems, caught.value.problems
    assert words in problems[0].reason


def test_a_single_address_is_a_network_of_one() -> None:
    config = AddressPolicyConfig.model_validate({"deny": ["127.0.0.2", "fd00::1"]})
    assert config.deny == ["127.0.0.2/32", "fd00::1/128"]


def test_rtmp_is_pinned_to_the_checked_address_and_told_by_its_own_url() -> None:
    url = "rtmp://viewer:secret@localhost:1935/live/room?token=1"
    guard = AddressGuard(resolve_source(url, IngestConfig()), IngestConfig(), "room-1")
    pinned = guard.route().url
    host = pinned.split("@", 1)[1].rsplit(":", 1)[0].strip("[]")
    assert ipaddress.ip_address(host).is_loopback  # localhost, resolved once, by address
    assert pinned == f"rtmp://viewer:secret@{host}:1935/live/room?token=1"
    told = guard.explain(SourceError(f"cannot open {pinned}: Connection refused"))
    assert str(told) == f"cannot open {url}: Connection refused"
