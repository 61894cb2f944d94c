"""DNS for the authentication filters: one caching resolver, shared and injected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from milterfilters.dns.errors import DnsBudgetExhausted, DnsError, DnsTemporaryError, DnsTimeout
from milterfilters.dns.resolver import BudgetedResolver, DnsLookups, Resolver, parse_nameserver

if TYPE_CHECKING:
    from milterfilters.services import Services

__all__ = [
    "BudgetedResolver",
    "DnsBudgetExhausted",
    "DnsError",
    "DnsLookups",
    "DnsTemporaryError",
    "DnsTimeout",
    "Resolver",
    "make_resolver",
    "parse_nameserver",
]


def make_resolver(services: Services) -> Resolver:
    """The resolver ``[dns]`` describes, counting into ``services.metrics``."""
    cfg = services.config.dns
    return Resolver(
        cfg.nameservers,
        timeout=cfg.timeout,
        cache_size=cfg.cache_size,
        lookup_budget=cfg.lookup_budget,
        metrics=services.metrics,
    )
