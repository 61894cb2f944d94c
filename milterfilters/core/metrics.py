"""Thread-safe metrics: counters (messages by action, findings by symbol, filter errors and
timeouts, DNS queries), observations (filter latency) and gauges (a live model's id).

This is the interface filters, the chain and the resolver call; it keeps everything in
process memory. The milter installs a subclass that also exports to Prometheus
(:mod:`milterfilters.metrics`), so nothing here needs to know about exposition.
"""

from __future__ import annotations

import threading
from collections import Counter

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(name: str, labels: dict[str, str]) -> _Key:
    return name, tuple(sorted(labels.items()))


class Metrics:
    """Named counters, observations and gauges with optional labels, safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[_Key] = Counter()
        self._observed: dict[_Key, tuple[int, float]] = {}
        self._gauges: dict[_Key, float] = {}
        self._infos: dict[_Key, str] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add ``amount`` to the counter ``name`` (names end in ``_total``)."""
        key = _key(name, labels)
        with self._lock:
            self._counts[key] += amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record one measurement (a duration in seconds, say) under ``name``."""
        key = _key(name, labels)
        with self._lock:
            count, total = self._observed.get(key, (0, 0.0))
            self._observed[key] = (count + 1, total + value)

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge ``name`` to ``value``."""
        with self._lock:
            self._gauges[_key(name, labels)] = value

    def info(self, name: str, label: str, value: str, **labels: str) -> None:
        """Make ``value`` the live ``label`` of the info gauge ``name`` for ``labels``: that
        series is 1, the one it replaces 0 (e.g. the model id of a filter after a reload)."""
        key = _key(name, labels)
        with self._lock:
            old = self._infos.get(key)
            self._infos[key] = value
        if old is not None and old != value:
            self.set(name, 0.0, **labels, **{label: old})
        self.set(name, 1.0, **labels, **{label: value})

    def get(self, name: str, **labels: str) -> int:
        key = _key(name, labels)
        with self._lock:
            return self._counts[key]

    def observations(self, name: str, **labels: str) -> tuple[int, float]:
        """How many values were observed under ``name`` and ``labels``, and their sum."""
        with self._lock:
            return self._observed.get(_key(name, labels), (0, 0.0))

    def gauge(self, name: str, **labels: str) -> float | None:
        """The gauge's value, or None if it was never set."""
        with self._lock:
            return self._gauges.get(_key(name, labels))

    def total(self, name: str) -> int:
        with self._lock:
            return sum(v for (n, _), v in self._counts.items() if n == name)

    def snapshot(self) -> dict[str, int]:
        """Every counter as ``name{label="v"}`` → value."""
        with self._lock:
            items = list(self._counts.items())
        out = {}
        for (name, labels), value in sorted(items):
            tag = ",".join(f'{k}="{v}"' for k, v in labels)
            out[f"{name}{{{tag}}}" if tag else name] = value
        return out
