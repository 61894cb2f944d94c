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
from milterfilters.mail.identity import SpfIdentity

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
    """The outcome of one ``check_host()`` (RFC 7208 §4) for one identity.

    ``explanation``, ``mechanism`` and ``problem`` come from the sender's DNS: hostile text,
    to be quoted wherever it is written.
    """

    identity: Identity
    sender: str  # the <sender> checked: local@domain from the parsed MAIL FROM, or postmaster@HELO
    domain: str  # the domain whose policy was evaluated (normalized)
    result: SpfResultName
    explanation: str  # exp= text (fail), pyspf's message (errors), or a short description
    mechanism: str  # the mechanism that matched, "" if none
    error: str = ""  # for permerror: what was wrong (pyspf's message), "" otherwise
    problem: str = ""  # for permerror: the offending mechanisms as the record spells them


def check_host(
    ip: str,
    identity: SpfIdentity,
    helo: str,
    lookups: DnsLookups,
    *,
    receiver: str = "unknown",
    default_explanation: str | None = None,
    timeout: float = 20.0,
) -> SpfCheck:
    """Evaluate SPF for ``identity`` from ``ip``, asking DNS through ``lookups``; ``helo`` is
    the HELO domain for the ``%{h}`` macro. Never raises for DNS trouble: that is ``temperror``.

    pyspf splits its ``s`` argument at the first ``@``, which is wrong for a quoted local
    part holding one (``"x@y"@paypal.com``): the local part and domain it evaluates (its
    ``l``, ``o`` and ``d`` macro variables) are set from the parsed parts instead.
    """
    query = spf.query(i=ip, s=identity.sender, h=helo, receiver=receiver, timeout=timeout, querytime=0)
    query.s = identity.sender
    query.l, query.o, query.d = identity.local_part, identity.domain, identity.domain
    query.ident = identity.kind
    if default_explanation is not None:
        query.set_default_explanation(default_explanation)
    with _lookups_bound(lookups):
        raw_result, _code, explanation = query.check()
    result: SpfResultName = _LEGACY_RESULTS.get(raw_result, raw_result)
    return SpfCheck(
        identity=identity.kind,
        sender=identity.sender,
        domain=identity.domain,
        result=result,
        explanation=explanation or "",
        mechanism=query.mechanism or "",
        error=str(getattr(query, "prob", "") or "") if result == "permerror" else "",
        problem=" ".join(query.mech) if result == "permerror" else "",
    )
