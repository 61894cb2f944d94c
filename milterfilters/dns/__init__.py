"""DNS for the authentication filters: one caching resolver, shared and injected.

Modules:

* ``resolver`` — :class:`Resolver` (dnspython, TTL cache, timeouts, counters) and per-check
  :class:`BudgetedResolver` views
* ``cache``    — the TTL cache (negative answers included)
* ``budget``   — :func:`budgeted_txt_lookup`: TXT lookups for one message under one budget
* ``errors``   — :class:`DnsError` and its kinds (temporary, timeout, budget exhausted)
"""

from milterfilters.dns.budget import TxtLookup, budgeted_txt_lookup
from milterfilters.dns.errors import DnsBudgetExhausted, DnsError, DnsTemporaryError, DnsTimeout
from milterfilters.dns.resolver import BudgetedResolver, DnsLookups, Resolver, parse_nameserver

__all__ = [
    "BudgetedResolver",
    "DnsBudgetExhausted",
    "DnsError",
    "DnsLookups",
    "DnsTemporaryError",
    "DnsTimeout",
    "Resolver",
    "TxtLookup",
    "budgeted_txt_lookup",
    "parse_nameserver",
]
