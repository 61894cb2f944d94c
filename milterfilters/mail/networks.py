"""Client networks: parsing CIDR lists from the configuration and matching client addresses.

One implementation for every filter that trusts or exempts networks (relay, rate limits, SPF,
DKIM signing, DMARC, allow-lists), so an IPv4-mapped IPv6 client or rule is handled the same
way everywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from milterfilters.core.services import Services

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_network(text: str) -> IPNetwork:
    """A CIDR network (or a single address); IPv4-mapped IPv6 networks become IPv4.

    Client addresses are unmapped before matching (``::ffff:192.0.2.1`` is 192.0.2.1),
    so a rule written in mapped form must be unmapped too or it would never match.
    Raises ValueError for anything that is not a network.
    """
    try:
        network = ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP network") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, max(network.prefixlen - 96, 0)))
    return network


class NetworkSet:
    """A set of IPv4 and IPv6 networks to test client addresses against (``ip in networks``)."""

    def __init__(self, entries: Iterable[str | IPNetwork] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            e if isinstance(e, (ipaddress.IPv4Network, ipaddress.IPv6Network)) else parse_network(e)
            for e in entries
        )

    def __contains__(self, ip: object) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)

    def __iter__(self) -> Iterator[IPNetwork]:
        return iter(self.networks)

    def __len__(self) -> int:
        return len(self.networks)

    def __add__(self, other: NetworkSet) -> NetworkSet:
        return NetworkSet(self.networks + other.networks)

    def __repr__(self) -> str:
        return f"NetworkSet({[str(n) for n in self.networks]!r})"


def trusted_networks(services: Services, own: Iterable[str]) -> NetworkSet:
    """A filter's ``own`` networks if it lists any, else the chain's trusted networks
    (``[relay] trusted_networks``), so an admin lists the trusted networks once."""
    own = tuple(own)
    return NetworkSet(own) if own else NetworkSet(services.trusted_networks)
