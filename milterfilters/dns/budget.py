"""Budgeted TXT lookups for one message: what DKIM, ARC and DMARC ask DNS through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from milterfilters.dns.resolver import DnsLookups, Resolver

#: A TXT lookup: each record's strings joined; [] when the name has no TXT record.
#: Raises :class:`milterfilters.dns.DnsTemporaryError` when DNS cannot answer now.
TxtLookup = Callable[[str], list[bytes]]


class HasResolver(Protocol):
    """Anything with the shared resolver (the chain's services)."""

    @property
    def resolver(self) -> Resolver: ...


def budgeted_txt_lookup(services: HasResolver) -> TxtLookup:
    """TXT lookups through the shared resolver under one budget for one message.

    Neither the resolver nor the budget is made before the first lookup: unsigned mail
    costs no DNS at all.
    """
    budget: DnsLookups | None = None

    def lookup(name: str) -> list[bytes]:
        nonlocal budget
        if budget is None:
            budget = services.resolver.budget()
        return budget.txt(name)

    return lookup
