"""The resolver shared by the authentication filters: dnspython underneath, with a TTL
cache (negative answers included), per-query timeouts, counters, and budgeted views.

Filters never reach dnspython or a module global: they get a :class:`Resolver` from
``services.resolver`` and, per message, a :class:`BudgetedResolver` from
:meth:`Resolver.budget` that caps how many lookups and how much time one check may spend.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver

from milterfilters.core.metrics import Metrics
from milterfilters.dns.cache import TtlCache
from milterfilters.dns.errors import DnsBudgetExhausted, DnsError, DnsTemporaryError, DnsTimeout

Records = tuple[dns.rdata.Rdata, ...]

#: seconds a cached answer may live at most, whatever its TTL says
MAX_CACHE_TTL = 86400.0


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"::1"`` or ``"[::1]:5353"`` → (address, port)."""
    text = spec.strip()
    port = 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad nameserver {spec!r}: expected [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad nameserver {spec!r}: port must be 1-65535")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"bad nameserver {spec!r}: expected an IP address, host:port or [IPv6]:port"
        ) from None
    return host, port


def _qname(name: str | bytes) -> dns.name.Name | None:
    """The absolute DNS name for ``name``; ``None`` if it is empty or cannot exist in the DNS."""
    try:
        if isinstance(name, bytes):
            name = name.decode("ascii")
        qname = dns.name.from_text(name, origin=dns.name.root)
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return None
    return None if qname == dns.name.root else qname


def _negative_ttl(response: dns.message.QueryMessage) -> float:
    """How long a negative answer may be cached: per RFC 2308, only with an SOA."""
    if not any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority):
        return 0.0
    try:
        return float(response.resolve_chaining().minimum_ttl)
    except dns.exception.DNSException:
        return 0.0


def _cname_chain_broken(error: dns.resolver.NoNameservers) -> bool:
    """Whether the servers answered, but with a CNAME loop (a broken zone, not an outage)."""
    failures = [entry[3] for entry in error.kwargs.get("errors") or ()]
    return bool(failures) and all(isinstance(f, dns.message.ChainTooLong) for f in failures)


class DnsLookups(ABC):
    """Typed lookups on top of :meth:`records`: what SPF, DKIM and DMARC ask for.

    Every method returns ``[]`` (or ``None``) for NXDOMAIN and NODATA alike, and raises
    :class:`DnsTemporaryError` when the answer is unknown for now.
    """

    @abstractmethod
    def records(self, name: str | bytes, rdtype: str | int) -> Records:
        """The records of type ``rdtype`` at ``name`` (CNAMEs followed)."""

    def txt(self, name: str | bytes) -> list[bytes]:
        """Each TXT record at ``name`` as bytes, its character-strings joined."""
        return [b"".join(r.strings) for r in self.records(name, "TXT")]  # type: ignore[attr-defined]

    def a(self, name: str | bytes) -> list[str]:
        return [r.address for r in self.records(name, "A")]  # type: ignore[attr-defined]

    def aaaa(self, name: str | bytes) -> list[str]:
        return [r.address for r in self.records(name, "AAAA")]  # type: ignore[attr-defined]

    def mx(self, name: str | bytes) -> list[tuple[int, str]]:
        """(preference, exchange) pairs; the exchange without its final dot."""
        return [
            (r.preference, r.exchange.to_text(omit_final_dot=True))  # type: ignore[attr-defined]
            for r in self.records(name, "MX")
        ]

    def ptr(self, name: str | bytes) -> list[str]:
        """PTR targets at ``name`` (a reverse name such as ``4.3.2.1.in-addr.arpa``)."""
        return [r.target.to_text(omit_final_dot=True) for r in self.records(name, "PTR")]  # type: ignore[attr-defined]

    def dkim_dnsfunc(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's ``dnsfunc=``: the first TXT record at ``name``, or ``None``.

        Raises :class:`DnsTemporaryError` when the answer is unknown for now (dkimpy
        would otherwise read that as "no key"); the resolver's own timeout applies.
        """
        found = self.txt(name)
        return found[0] if found else None


class Resolver(DnsLookups):
    """A caching stub resolver, safe to share between threads.

    ``nameservers`` are ``host`` or ``host:port`` strings; empty uses the system's
    (``/etc/resolv.conf``). ``timeout`` bounds each lookup, retries and the TCP retry
    after a truncated UDP answer included.
    """

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        *,
        timeout: float = 5.0,
        cache_size: int = 10_000,
        lookup_budget: int = 250,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.lookup_budget = lookup_budget
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._cache: TtlCache[Records] = TtlCache(cache_size, clock)
        if nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*parse_nameserver(spec)) for spec in nameservers
            ]
        else:
            try:
                resolver = dns.resolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration as e:
                raise DnsError(f"no system resolver ({e}); set [dns] nameservers") from e
        resolver.search = []
        resolver.use_search_by_default = False
        # Each attempt waits at most 2 s; dnspython retries (backoff, other servers) until
        # the lifetime, the whole per-lookup timeout, ends.
        resolver.timeout = min(2.0, timeout)
        resolver.lifetime = timeout
        resolver.cache = None
        self._resolver = resolver

    def records(self, name: str | bytes, rdtype: str | int, *, timeout: float | None = None) -> Records:
        """The records of type ``rdtype`` at ``name``, from the cache or the network.

        ``timeout`` (at most the configured one) bounds this lookup when given.
        """
        qtype = dns.rdatatype.RdataType.make(rdtype)
        label = dns.rdatatype.to_text(qtype)
        # Keyed by the text as asked (hashing a dns.name.Name costs more than the lookup).
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        key = (text.lower().rstrip("."), int(qtype))
        cached = self._cache.get(key)
        if cached is not None:
            self.metrics.inc("dns_cache_hits_total", type=label)
            return cached
        qname = _qname(name)
        if qname is None:
            return ()
        self.metrics.inc("dns_queries_total", type=label)
        lifetime = self.timeout if timeout is None else max(0.001, min(timeout, self.timeout))
        try:
            answer = self._resolver.resolve(
                qname, qtype, lifetime=lifetime, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as e:
            try:
                ttl = _negative_ttl(e.response(qname))
            except (KeyError, IndexError):
                ttl = 0.0
            self._cache.put(key, (), min(ttl, MAX_CACHE_TTL))
            return ()
        except dns.exception.Timeout as e:
            self.metrics.inc("dns_timeouts_total", type=label)
            raise DnsTimeout(f"{qname} {label}: no answer within {lifetime:g}s") from e
        except dns.resolver.NoNameservers as e:
            if _cname_chain_broken(e):
                self.metrics.inc("dns_errors_total", type=label, kind="cname_chain")
                raise DnsError(f"{qname} {label}: CNAME chain loops or is too long") from e
            self.metrics.inc("dns_errors_total", type=label, kind="servfail")
            raise DnsTemporaryError(f"{qname} {label}: no server answered (SERVFAIL or refused)") from e
        except (dns.exception.DNSException, OSError) as e:
            self.metrics.inc("dns_errors_total", type=label, kind="other")
            raise DnsTemporaryError(f"{qname} {label}: {e}") from e
        if answer.rrset is None:
            found: Records = ()
            ttl = _negative_ttl(answer.response)
        else:
            found = tuple(answer.rrset)
            ttl = float(answer.chaining_result.minimum_ttl)
        self._cache.put(key, found, min(ttl, MAX_CACHE_TTL))
        return found

    def budget(self, lookups: int | None = None, seconds: float | None = None) -> BudgetedResolver:
        """A view for one check that allows ``lookups`` lookups (cache hits count too,
        so results do not depend on what is cached) within ``seconds`` of wall time.

        Defaults: ``[dns] lookup_budget`` lookups, ``[dns] timeout`` seconds.
        """
        return BudgetedResolver(
            self,
            self.lookup_budget if lookups is None else lookups,
            self.timeout if seconds is None else seconds,
        )

    def clear_cache(self) -> None:
        self._cache.clear()

    @property
    def cache_entries(self) -> int:
        return len(self._cache)


class BudgetedResolver(DnsLookups):
    """A :class:`Resolver` seen through a per-check budget of lookups and time.

    When either is spent, lookups raise :class:`DnsBudgetExhausted` (a temporary error):
    one slow or hostile sender's DNS costs one check at most ``seconds``. Safe to share
    between threads, though meant for one check.
    """

    def __init__(self, resolver: Resolver, lookups: int, seconds: float) -> None:
        self.resolver = resolver
        self.lookups_left = lookups
        self.deadline = time.monotonic() + seconds
        self._lock = threading.Lock()

    @property
    def timeout(self) -> float:
        """Seconds left for this check."""
        return max(0.0, self.deadline - time.monotonic())

    def records(self, name: str | bytes, rdtype: str | int) -> Records:
        with self._lock:
            if self.lookups_left <= 0:
                self._spent("lookups")
            self.lookups_left -= 1
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._spent("time")
        return self.resolver.records(name, rdtype, timeout=remaining)

    def _spent(self, what: str) -> None:
        self.resolver.metrics.inc("dns_errors_total", kind="budget")
        raise DnsBudgetExhausted(f"DNS lookup budget ({what}) for this check is spent")
