"""Which mail is ours going out: from a SASL-authenticated client or a trusted network.

DKIM signing applies to such mail; DKIM and DMARC verification skip it by default (a user
submitting from home fails SPF for their own domain, and is not signed yet). The trusted
networks are the relay filter's ``trusted_networks``, so an admin lists them once; a filter
with a list of its own uses that instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from milterfilters.context import Context
from milterfilters.services import Services

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[object]) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]`` as networks; raises ValueError."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP network") from None
    return tuple(out)


def trusted_networks(services: Services, own: Iterable[str]) -> tuple[Network, ...]:
    """``own`` if it lists any network, else the enabled relay filter's trusted networks."""
    own = tuple(own)
    if own:
        return parse_networks(own)
    try:
        relay = services.config.filter("relay")
    except KeyError:
        return ()
    if not relay.settings.enabled:
        return ()
    return parse_networks(getattr(relay.options, "trusted_networks", ()))


def is_outbound(ctx: Context, networks: Iterable[Network]) -> bool:
    """Whether the client authenticated or connects from one of ``networks``."""
    if ctx.is_authenticated:
        return True
    ip = ctx.connection.ip
    return ip is not None and any(ip in net for net in networks)
