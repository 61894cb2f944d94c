"""Which mail is ours going out: from a SASL-authenticated client or a trusted network.

DKIM signing applies to such mail; DKIM and DMARC verification skip it by default (a user
submitting from home fails SPF for their own domain, and is not signed yet). The trusted
networks are the relay filter's ``trusted_networks``, so an admin lists them once; a filter
with a list of its own uses that instead.
"""

from __future__ import annotations

from milterfilters.core.context import Context
from milterfilters.mail.networks import NetworkSet, trusted_networks

__all__ = ["is_outbound", "trusted_networks"]


def is_outbound(ctx: Context, networks: NetworkSet) -> bool:
    """Whether the client authenticated or connects from one of ``networks``."""
    if ctx.is_authenticated:
        return True
    return ctx.connection.ip in networks
