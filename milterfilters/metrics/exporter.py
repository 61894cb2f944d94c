"""The supervisor's HTTP endpoint: ``GET /metrics`` over all worker processes, ``GET /healthz``.

Why prometheus-client's multiprocess mode (and not workers pushing to the supervisor): the
counters must survive the worker that counted them (a crash must not reset
``messages_total``), libmilter's threads must not wait on a pipe to bump a counter, and a
scrape must not depend on a worker answering. In multiprocess mode each worker writes its
values into memory-mapped files named after its pid in one directory
(:class:`MetricsDirectory`, created per run by the supervisor, handed to workers as
``PROMETHEUS_MULTIPROC_DIR`` and removed at exit); a scrape reads and adds up all files. The
files of a dead worker stay, so counters and histograms never go back; its "live" gauges
(``worker_serving``, ``model_info``) are dropped when the supervisor reaps it. This works
unchanged for any number of workers.

The supervisor's own figures (``worker_restarts_total``, ``workers_running``) come from
:class:`SupervisorCollector`, read at scrape time. ``/healthz`` is 200 while some running
worker has set ``worker_serving`` (just before libmilter's loop), 503 otherwise.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from milterfilters.metrics.prometheus import PREFIX

log = logging.getLogger("milterfilters.metrics")

#: the environment variable prometheus-client reads (at import) to write to files
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsDirectory:
    """The per-run directory of the workers' metric files."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="milterfilters-metrics-")

    def process_dead(self, pid: int) -> None:
        """Drop the live gauges of a worker that exited (its counters stay)."""
        mark_process_dead(pid, self.path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class SupervisorCollector:
    """The supervisor's figures, read at each scrape."""

    def __init__(self, restarts: Callable[[], int], live_pids: Callable[[], Collection[int]]) -> None:
        self.restarts = restarts
        self.live_pids = live_pids

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            PREFIX + "worker_restarts", "Worker processes restarted after they exited.", value=self.restarts()
        )
        yield GaugeMetricFamily(
            PREFIX + "workers_running", "Worker processes running now.", value=len(self.live_pids())
        )


def serving_pids(directory: str) -> set[int]:
    """The pids whose ``worker_serving`` gauge is 1 in ``directory``'s files."""
    files = glob.glob(os.path.join(directory, "gauge_liveall_*.db"))
    pids = set()
    for metric in MultiProcessCollector.merge(files, accumulate=False):
        if metric.name != PREFIX + "worker_serving":
            continue
        for sample in metric.samples:
            pid = sample.labels.get("pid", "")
            if sample.value >= 1 and pid.isdigit():
                pids.add(int(pid))
    return pids


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the address up (socket.getfqdn): no DNS for this
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()


def _server_class(host: str, port: int) -> tuple[type[_Server], str]:
    """A server class for the address family of ``host``, and the address to bind."""
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return type("_BoundServer", (_Server,), {"address_family": family}), str(sockaddr[0])


class Exporter:
    """Serves ``/metrics`` and ``/healthz`` on ``address`` from a background thread.

    Binding happens here, so a taken port fails at start-up (``OSError``).
    """

    def __init__(
        self,
        address: tuple[str, int],
        directory: MetricsDirectory,
        *,
        restarts: Callable[[], int],
        live_pids: Callable[[], Collection[int]],
    ) -> None:
        self.directory = directory
        self.live_pids = live_pids
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=directory.path)
        self.registry.register(SupervisorCollector(restarts, live_pids))  # type: ignore[arg-type]
        self._metrics_app = make_wsgi_app(self.registry)
        host, port = address
        server_class, bind_host = _server_class(host, port)
        self.server = make_server(
            bind_host, port, self._app, server_class=server_class, handler_class=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def url_host(self) -> str:
        """``HOST:PORT`` as a URL writes it (``[::1]:9101``)."""
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"

    def serving(self) -> bool:
        """Whether some running worker serves the milter socket."""
        live = set(self.live_pids())
        return bool(live & serving_pids(self.directory.path))

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "GET, HEAD")])
            return [b"only GET\n"]
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok = self.serving()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain")])
            return [b"serving\n" if ok else b"no worker is serving\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: GET /metrics or /healthz\n"]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="metrics-http")
        self._thread.start()
        log.info("metrics on http://%s/metrics", self.url_host)

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()
