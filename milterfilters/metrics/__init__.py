"""Metrics export: Prometheus text at ``GET /metrics`` and a health check at ``GET /healthz``.

The core's :class:`~milterfilters.core.metrics.Metrics` stays the interface filters and the
chain call; this package gives it a Prometheus backend and serves it, across the supervisor
and all its worker processes (``[metrics] listen``; off by default).

Modules:

* ``prometheus`` — :class:`PrometheusMetrics` (the backend a worker installs), the catalogue
  of exported names (all ``milterfilters_*``)
* ``models``     — the id of each live classifier model (weights hash, training date)
* ``exporter``   — the supervisor's HTTP endpoint over the workers' files (multiprocess mode),
  the per-run metrics directory, the supervisor's own figures, ``/healthz``
"""
