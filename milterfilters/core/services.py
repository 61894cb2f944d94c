"""What filters share, resolved once when the chain is built and handed to every filter.

Filters get everything that does I/O or that another part of the configuration decides from
here — never the whole configuration — so a filter reads only its own options, tests can hand
it real local servers (a DNS server on loopback) or fakes, and nothing reaches a module global.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from milterfilters.core.metrics import Metrics

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Services:
    """What a filter may use besides its options and the context: built once, shared by all
    connections and threads."""

    metrics: Metrics = field(default_factory=Metrics)
    #: wall-clock time (seconds since the epoch): DKIM t=/x=, rate-limit windows
    clock: Callable[[], float] = time.time
    #: builds the DNS resolver shared by SPF, DKIM and DMARC (``milterfilters.dns.Resolver``);
    #: called once, by the first filter that asks
    resolver_factory: Callable[[], Any] | None = None
    #: the networks whose clients are ours (the enabled relay filter's ``trusted_networks``);
    #: filters with a list of their own use that instead
    trusted_networks: tuple[IPNetwork, ...] = ()
    #: the authserv-id this host writes in Authentication-Results (RFC 8601)
    authserv_id: str = "localhost"
    #: the configuration file the filters were built from: relative paths in options resolve
    #: beside it, and errors name it
    config_source: str = "<code>"
    _resolver: Any = field(default=None, repr=False, compare=False)
    _resolver_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def resolver(self) -> Any:
        """The one resolver (and cache) of the chain; the first thread to ask builds it."""
        if self._resolver is None:
            with self._resolver_lock:
                if self._resolver is None:
                    if self.resolver_factory is None:
                        raise RuntimeError("no DNS resolver configured")
                    self._resolver = self.resolver_factory()
        return self._resolver
