"""Thread-safe counters: messages by action, filter errors and timeouts, DNS queries.

Kept in process memory; the operations milestone exports them (Prometheus).
"""

from __future__ import annotations

import threading
from collections import Counter


class Metrics:
    """Named counters with optional labels, safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] += amount

    def get(self, name: str, **labels: str) -> int:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            return self._counts[key]

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
