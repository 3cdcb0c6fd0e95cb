"""Which IP addresses a source may connect to: the address policy of ``[ingest.addresses]``.

A stream URL names a host, and FFmpeg would connect wherever that host, a redirect or an HLS
playlist points: the cloud's metadata service at 169.254.169.254, the daemon's own API on
loopback, a database in the private network. The policy says which addresses are out of
bounds, and every connection a source makes is checked against it (see
:mod:`~streamguard.ingest.guard`): a name is resolved once, every address it resolves to is
checked, and the connection goes to the checked address, so a name cannot resolve to an
allowed address for the check and a denied one for the connection.

How allow and deny combine: an address is judged by the most specific (longest-prefix)
network containing it among the denied networks (``deny``, :data:`ALWAYS_DENIED`, loopback
and private ones when they are off) and the allowed ones (``allow``); an allowed network as
specific as the denied one wins; an address in no listed network is allowed. IPv4 addresses
written as IPv6 (``::ffff:169.254.169.254``, NAT64, 6to4, Teredo) are judged by the IPv4
address they carry as well.

A denied target always fails with the same words, :data:`POLICY_REFUSAL`, whether anything
listens there or not: nothing is sent to it, so there is nothing to tell.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from streamguard.config.ingest import ALWAYS_DENIED, LOOPBACK, PRIVATE, AddressPolicyConfig
from streamguard.core.errors import SourceError

__all__ = ["POLICY_REFUSAL", "AddressNotAllowed", "AddressPolicy", "IPAddress", "literal_address"]

POLICY_REFUSAL = "address not allowed by policy"
"""The whole reason given for a denied target, wherever it is reported."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressNotAllowed(SourceError):
    """A source tried to reach an address the policy denies; the message says no more."""

    def __init__(self, url: str | None = None) -> None:
        super().__init__(f"cannot open {url}: {POLICY_REFUSAL}" if url else POLICY_REFUSAL)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The allowed and denied networks; ``allows`` judges one address."""

    allowed: tuple[_Network, ...]
    denied: tuple[_Network, ...]

    @classmethod
    def of(cls, config: AddressPolicyConfig) -> AddressPolicy:
        """The policy a config section describes (built-in denied networks included)."""
        denied = [*ALWAYS_DENIED, *config.deny]
        if not config.allow_loopback:
            denied += LOOPBACK
        if not config.allow_private:
            denied += PRIVATE
        return cls(allowed=_networks(config.allow), denied=_networks(denied))

    def allows(self, address: IPAddress) -> bool:
        """Whether a source may connect to ``address`` (and to any IPv4 address it carries)."""
        return all(self._allows_one(a) for a in _carried(address))

    def _allows_one(self, address: IPAddress) -> bool:
        deny = _most_specific(address, self.denied)
        return deny < 0 or _most_specific(address, self.allowed) >= deny

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, all of them allowed, or ``AddressNotAllowed``.

        Blocking (the system resolver): call it off the event loop. A name that does not
        resolve raises :class:`SourceError`.
        """
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise SourceError(f"cannot resolve the host name {host!r}") from exc
        return self.checked(str(info[4][0]) for info in infos)

    def checked(self, resolved: Iterable[str]) -> list[IPAddress]:
        """The resolved addresses in order, without repeats; ``AddressNotAllowed`` if any of
        them is denied (a name that also points at a denied address is not used at all)."""
        addresses = list(dict.fromkeys(ipaddress.ip_address(a) for a in resolved))
        if not addresses or not all(self.allows(a) for a in addresses):
            raise AddressNotAllowed()
        return addresses


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` names without asking DNS (any form the resolver reads as an
    address: ``127.0.0.1``, ``::1``, ``2130706433``, ``0x7f.1``), or ``None`` for a name."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0])) if infos else None


def _networks(texts: Iterable[str]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


def _most_specific(address: IPAddress, networks: tuple[_Network, ...]) -> int:
    """The prefix length of the most specific network containing ``address``, -1 if none."""
    return max((n.prefixlen for n in networks if address in n), default=-1)


def _carried(address: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    carried: list[IPAddress] = [address]
    if address.ipv4_mapped is not None:
        carried.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        carried.append(address.sixtofour)
    if address.teredo is not None:
        carried.append(address.teredo[1])
    if address in _NAT64:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return carried
