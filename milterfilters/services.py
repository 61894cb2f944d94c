"""Shared services injected into filters at construction: configuration, metrics, DNS, clock.

Filters get everything that does I/O from here, so tests can hand them real local
servers (a DNS server on loopback) or fakes, and nothing reaches a module global.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from milterfilters.metrics import Metrics

if TYPE_CHECKING:
    from milterfilters.config import Config


@dataclass
class Services:
    """What a filter may use besides the context: built once, shared by all connections."""

    config: Config
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], float] = time.time
    #: the DNS resolver shared by SPF, DKIM and DMARC (``milterfilters.dns``); built lazily
    resolver_factory: Callable[[Services], Any] | None = None
    _resolver: Any = None
    _resolver_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def resolver(self) -> Any:
        """The one resolver (and cache) of the process; the first thread to ask builds it."""
        if self._resolver is None:
            with self._resolver_lock:
                if self._resolver is None:
                    if self.resolver_factory is None:
                        raise RuntimeError("no DNS resolver configured")
                    self._resolver = self.resolver_factory(self)
        return self._resolver
