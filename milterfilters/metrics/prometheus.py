"""The Prometheus side of :class:`milterfilters.core.metrics.Metrics`, installed by each worker.

:class:`PrometheusMetrics` keeps the in-memory counts of its base class (tests and the
adapter read them) and mirrors every call into a prometheus-client metric named
``milterfilters_<name>``. :data:`CATALOGUE` declares the metrics the milter itself reports,
with their kind, help text and label names; a name outside it (a plugin's counter) becomes a
counter, histogram or gauge with the labels of its first call. A later call that lacks a
declared label exports it as ``""``; a label that was not declared is dropped (and logged
once), since a Prometheus metric has one fixed set of label names.

In a worker the supervisor started with metrics on, ``PROMETHEUS_MULTIPROC_DIR`` is set
before prometheus-client is imported, so every value lands in that directory's memory-mapped
files and the supervisor's exporter (:mod:`milterfilters.metrics.exporter`) adds them up.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from milterfilters.core.metrics import Metrics

log = logging.getLogger("milterfilters.metrics")

#: every exported name starts with this
PREFIX = "milterfilters_"

#: latency buckets (seconds) of ``milterfilters_filter_duration_seconds``: from a cached
#: lookup (1 ms) to a filter's default DNS budget (5 s) and beyond
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Kind = Literal["counter", "histogram", "gauge"]

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its kind, help text, label names and, for gauges, how the values
    of several worker processes combine (prometheus-client's ``multiprocess_mode``)."""

    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    multiprocess_mode: str = "livemax"


#: the metrics the milter reports, by the name passed to :class:`Metrics` (exported with
#: :data:`PREFIX`); the supervisor adds ``worker_restarts_total`` and ``workers_running``
CATALOGUE: Mapping[str, MetricSpec] = {
    "messages_total": MetricSpec("counter", "Messages decided at end of data, by action.", ("action",)),
    "decisions_total": MetricSpec(
        "counter", "Refusals before end of data, by action and stage.", ("action", "stage")
    ),
    "findings_total": MetricSpec("counter", "Findings in decided messages, by symbol.", ("symbol",)),
    "filter_duration_seconds": MetricSpec(
        "histogram", "Time a filter took at a stage (filters that returned).", ("filter", "stage")
    ),
    "filter_errors_total": MetricSpec(
        "counter", "Filter failures (exceptions and timeouts), by filter.", ("filter",)
    ),
    "filter_timeouts_total": MetricSpec("counter", "Filters that overran their timeout.", ("filter",)),
    "dns_queries_total": MetricSpec("counter", "DNS queries sent, by record type.", ("type",)),
    "dns_cache_hits_total": MetricSpec("counter", "DNS answers from the cache, by record type.", ("type",)),
    "dns_timeouts_total": MetricSpec("counter", "DNS queries that timed out, by record type.", ("type",)),
    "dns_errors_total": MetricSpec("counter", "DNS failures by record type and kind.", ("type", "kind")),
    "spf_results_total": MetricSpec("counter", "SPF results by identity and result.", ("identity", "result")),
    "model_info": MetricSpec(
        "gauge",
        "1 for the live classifier model of a filter (id: weights hash, training date).",
        ("filter", "model_id"),
    ),
    "worker_serving": MetricSpec(
        "gauge", "1 while a worker process serves the milter socket.", (), multiprocess_mode="liveall"
    ),
}

_GENERIC_HELP = {"counter": "Counter %s.", "histogram": "Observations of %s.", "gauge": "Gauge %s."}


class PrometheusMetrics(Metrics):
    """:class:`Metrics` that also exports to prometheus-client.

    ``registry`` is where the metrics register: None in a worker (multiprocess mode reads
    the files, not a registry), a fresh :class:`CollectorRegistry` in a test.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__()
        self.registry = registry
        self._exported: dict[str, tuple[Any, MetricSpec]] = {}
        self._warned: set[str] = set()
        self._export_lock = threading.Lock()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        super().inc(name, amount, **labels)
        metric = self._labelled("counter", name, labels)
        if metric is not None:
            metric.inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        super().observe(name, value, **labels)
        metric = self._labelled("histogram", name, labels)
        if metric is not None:
            metric.observe(value)

    def set(self, name: str, value: float, **labels: str) -> None:
        super().set(name, value, **labels)
        metric = self._labelled("gauge", name, labels)
        if metric is not None:
            metric.set(value)

    def _labelled(self, kind: Kind, name: str, labels: dict[str, str]) -> Any:
        """The prometheus-client child for ``name`` and ``labels``, created on first use;
        None (and one warning) when ``name`` cannot be exported as ``kind``."""
        with self._export_lock:
            found = self._exported.get(name)
            if found is None:
                found = self._create(kind, name, labels)
                if found is None:
                    return None
                self._exported[name] = found
        metric, spec = found
        if spec.kind != kind:
            self._warn(name, f"reported as a {kind}, exported as a {spec.kind}")
            return None
        label_names = spec.labels
        extra = set(labels) - set(label_names)
        if extra:
            self._warn(name, f"labels {sorted(extra)} are not exported")
        if not label_names:
            return metric
        return metric.labels(*(str(labels.get(label, "")) for label in label_names))

    def _create(self, kind: Kind, name: str, labels: dict[str, str]) -> tuple[Any, MetricSpec] | None:
        spec = CATALOGUE.get(name)
        if spec is None:
            if not _NAME.fullmatch(name) or not all(_NAME.fullmatch(label) for label in labels):
                self._warn(name, "not a valid Prometheus name")
                return None
            spec = MetricSpec(kind, _GENERIC_HELP[kind] % name, tuple(sorted(labels)))
        full = PREFIX + name
        if spec.kind == "counter":
            metric: Any = Counter(full, spec.help, spec.labels, registry=self.registry)
        elif spec.kind == "histogram":
            metric = Histogram(full, spec.help, spec.labels, registry=self.registry, buckets=LATENCY_BUCKETS)
        else:
            metric = Gauge(
                full,
                spec.help,
                spec.labels,
                registry=self.registry,
                multiprocess_mode=spec.multiprocess_mode,  # type: ignore[arg-type]
            )
        return metric, spec

    def _warn(self, name: str, problem: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("metric %s: %s", name, problem)
