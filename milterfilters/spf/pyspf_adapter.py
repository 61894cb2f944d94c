"""The one place where pyspf meets our resolver.

pyspf resolves through its module global ``spf.DNSLookup``. This module replaces it once,
on import, with a dispatcher that answers through the lookups bound to the calling
thread by :func:`check_host` — so concurrent checks in the milter's threads each use
their own budgeted view, and nothing else in the code base touches pyspf's globals.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import spf

from milterfilters.dns.errors import DnsError, DnsTemporaryError
from milterfilters.dns.resolver import DnsLookups

SpfResultName = Literal["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"]
Identity = Literal["mailfrom", "helo"]

#: pyspf's pre-RFC 7208 result names
_LEGACY_RESULTS = {"unknown": "permerror", "error": "temperror"}

_bound = threading.local()


def _dns_lookup(name: str, qtype: str, strict: Any = True, timeout: float = 0) -> list[tuple[Any, Any]]:
    """pyspf's ``DNSLookup`` contract: ``[((name, qtype), value), ...]``; TempError on failure."""
    lookups: DnsLookups | None = getattr(_bound, "lookups", None)
    if lookups is None:
        raise spf.TempError("DNS: no resolver bound to this thread (use milterfilters.spf.pyspf_adapter)")
    key = (name, qtype)
    try:
        if qtype == "A":
            return [(key, ip) for ip in lookups.a(name)]
        if qtype == "AAAA":
            return [(key, ip) for ip in lookups.aaaa(name)]
        if qtype == "MX":
            return [(key, mx) for mx in lookups.mx(name)]
        if qtype == "PTR":
            return [(key, target) for target in lookups.ptr(name)]
        if qtype == "TXT":
            return [(key, (txt,)) for txt in lookups.txt(name)]
        if qtype == "SPF":  # type 99, asked only in pyspf's "harsh" mode
            return [(key, tuple(r.strings)) for r in lookups.records(name, 99)]  # type: ignore[attr-defined]
    except DnsTemporaryError as e:
        raise spf.TempError(f"DNS {e}") from e
    except DnsError:
        # A broken zone (a CNAME loop): no usable data. RFC 7208 §5.5 skips such names.
        return []
    raise spf.TempError(f"DNS: unsupported query type {qtype}")


spf.DNSLookup = _dns_lookup


@contextmanager
def _lookups_bound(lookups: DnsLookups) -> Iterator[None]:
    previous = getattr(_bound, "lookups", None)
    _bound.lookups = lookups
    try:
        yield
    finally:
        _bound.lookups = previous


@dataclass(frozen=True)
class SpfCheck:
    """The outcome of one ``check_host()`` (RFC 7208 §4) for one identity."""

    identity: Identity
    sender: str  # the address checked: MAIL FROM, or postmaster@HELO
    domain: str  # the domain whose policy was evaluated
    result: SpfResultName
    explanation: str  # exp= text (fail), pyspf's message (errors), or a short description
    mechanism: str  # the mechanism that matched, "" if none
    received_spf: str  # value for a Received-SPF header (RFC 7208 §9.1)


def check_host(
    ip: str,
    sender: str,
    helo: str,
    lookups: DnsLookups,
    *,
    receiver: str = "unknown",
    default_explanation: str | None = None,
    timeout: float = 20.0,
) -> SpfCheck:
    """Evaluate SPF for ``sender`` (``""`` checks the HELO identity, postmaster@``helo``)
    from ``ip``, asking DNS through ``lookups``. Never raises for DNS trouble: that is
    ``temperror``."""
    query = spf.query(i=ip, s=sender, h=helo, receiver=receiver, timeout=timeout, querytime=0)
    if default_explanation is not None:
        query.set_default_explanation(default_explanation)
    with _lookups_bound(lookups):
        raw_result, _code, explanation = query.check()
    result: SpfResultName = _LEGACY_RESULTS.get(raw_result, raw_result)
    identity: Identity = "helo" if query.ident == "helo" else "mailfrom"
    return SpfCheck(
        identity=identity,
        sender=query.s,
        domain=query.o or "",
        result=result,
        explanation=explanation or "",
        mechanism=query.mechanism or "",
        received_spf=query.get_header(result, receiver=receiver),
    )
