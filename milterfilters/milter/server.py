"""``milterfilters run``: a supervising parent around one libmilter worker process.

Why a parent: libmilter's signal thread turns SIGHUP into a stop and Python never sees the
signals while libmilter runs. The parent handles the signals instead:

* SIGHUP — validate the configuration file; if valid, tell the worker to reload (it swaps
  its chain; connections in flight finish on the old one); if invalid, log and keep running.
* SIGTERM/SIGINT — stop the worker (libmilter lets connections finish) and exit within
  ``[milter] stop_timeout`` seconds, then remove the unix socket.
* The worker dying unexpectedly — log, count, and start a new one after a backoff that
  doubles while workers keep dying young (a crash loop) and starts over after one that ran
  for :attr:`Supervisor.stable_uptime`; meanwhile the MTA applies its milter_default_action
  (tempfail), so no mail is lost.

With ``[metrics] listen`` the parent also serves ``/metrics`` and ``/healthz``
(:mod:`milterfilters.metrics.exporter`): it makes a per-run metrics directory, hands it to
each worker (``--metrics-dir``) and removes it at exit.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from milterfilters.config import Config, load_config
from milterfilters.config.discovery import find_config
from milterfilters.config.socketspec import SocketSpec, parse_socket_spec
from milterfilters.config.verify import verify_config
from milterfilters.core.schema import ConfigError
from milterfilters.metrics.exporter import MULTIPROC_ENV, Exporter, MetricsDirectory
from milterfilters.milter.worker import configure_logging

log = logging.getLogger("milterfilters.supervisor")

#: the exit status of a worker that could not start (configuration, socket): not retried
#: when it is the first worker, since a restart would fail the same way
STARTUP_FAILURE = 2


class SocketInUse(Exception):
    """Another process is already listening on the configured socket."""


def check_socket_free(spec: SocketSpec) -> None:
    """Raise :class:`SocketInUse` if something listens on ``spec``; remove a stale unix
    socket file left behind by a crash."""
    if spec.family != "unix" or not os.path.exists(spec.path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(spec.path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", spec.path)
        os.unlink(spec.path)
        return
    except OSError as e:
        raise SocketInUse(f"cannot probe {spec.path}: {e}") from e
    finally:
        probe.close()
    raise SocketInUse(f"another milter is listening on {spec.path}")


class Supervisor:
    """Runs and watches the worker process; handles SIGHUP, SIGTERM and crashes."""

    #: seconds before the first restart; doubled for each worker that dies young, up to 30
    initial_backoff = 1.0
    #: a worker that ran this many seconds died of an isolated fault, not in a crash loop:
    #: the next restart waits only ``initial_backoff`` again
    stable_uptime = 10.0

    def __init__(
        self,
        config_path: str | None,
        config: Config,
        spec: SocketSpec,
        metrics_dir: MetricsDirectory | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.spec = spec
        self.metrics_dir = metrics_dir
        self.worker: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.reload_requested = False
        self.restarts = 0

    def live_pids(self) -> list[int]:
        """The pids of the workers running now (as last polled; safe from any thread)."""
        worker = self.worker
        return [worker.pid] if worker is not None and worker.returncode is None else []

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stopping = True

    def _start_worker(self) -> subprocess.Popen[bytes]:
        # -P: the worker imports the installed milterfilters, never a package that happens to
        # sit in the current directory
        cmd = [sys.executable, "-P", "-m", "milterfilters.milter.worker", "--socket", self.spec.libmilter]
        if self.config_path:
            cmd += ["--config", self.config_path]
        env = None
        if self.metrics_dir is not None:
            cmd += ["--metrics-dir", self.metrics_dir.path]
            env = {**os.environ, MULTIPROC_ENV: self.metrics_dir.path}
        worker = subprocess.Popen(cmd, stdin=subprocess.PIPE, env=env)
        log.info("started worker pid %d on %s", worker.pid, self.spec.libmilter)
        return worker

    def _reload(self) -> None:
        self.reload_requested = False
        try:
            config = load_config(self.config_path)
            verify_config(config, socket_override=self.spec.postfix)  # the socket in use
        except ConfigError as e:
            log.error("reload refused, keeping the running configuration: %s", e)
            return
        if parse_socket_spec(config.milter.socket) != parse_socket_spec(self.config.milter.socket):
            log.warning("reload: a changed [milter] socket takes effect only after a restart")
        if config.metrics != self.config.metrics:
            log.warning("reload: a changed [metrics] section takes effect only after a restart")
        self.config = config
        try:
            configure_logging(config)
        except ConfigError as e:
            log.error("reload: keeping the current log target: %s", e)
        if self.worker is not None and self.worker.stdin is not None:
            try:
                self.worker.stdin.write(b"reload\n")
                self.worker.stdin.flush()
                log.info("reload sent to worker pid %d", self.worker.pid)
            except OSError as e:
                log.error("cannot reach worker to reload: %s", e)

    def _stop_worker(self) -> int:
        worker = self.worker
        if worker is None or worker.poll() is not None:
            return 0
        worker.send_signal(signal.SIGTERM)
        try:
            return worker.wait(timeout=self.config.milter.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker pid %d did not stop in time; killing it", worker.pid)
            worker.kill()
            return worker.wait()

    def serve(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        first = True
        backoff = self.initial_backoff
        self.worker = self._start_worker()
        started = time.monotonic()
        try:
            while not self.stopping:
                if self.reload_requested:
                    self._reload()
                code = self.worker.poll()
                if code is None:
                    time.sleep(0.1)
                    continue
                if first and code == STARTUP_FAILURE:
                    log.error("worker failed to start")
                    return code
                first = False
                self.restarts += 1
                if self.metrics_dir is not None:
                    self.metrics_dir.process_dead(self.worker.pid)
                if time.monotonic() - started >= self.stable_uptime:
                    backoff = self.initial_backoff
                log.error("worker pid %d exited with %d; restarting in %.0fs", self.worker.pid, code, backoff)
                deadline = time.monotonic() + backoff
                while time.monotonic() < deadline and not self.stopping:
                    time.sleep(0.1)
                if self.stopping:
                    break
                backoff = min(backoff * 2, 30.0)
                check_socket_free(self.spec)
                self.worker = self._start_worker()
                started = time.monotonic()
        finally:
            self._stop_worker()
            if self.spec.family == "unix":
                try:
                    os.unlink(self.spec.path)
                except FileNotFoundError:
                    pass
        log.info("stopped")
        return 0


def run(config_path: str | None, *, socket_override: str | None = None) -> int:
    """Run the milter in the foreground until SIGTERM/SIGINT; returns the exit status.

    ``config_path`` is ``--config``; without it the configuration is found as
    :mod:`milterfilters.config.discovery` says, and the log names which one runs.
    """
    origin = find_config(config_path)
    config_path = origin.path
    config = load_config(config_path)
    configure_logging(config)
    log.info("configuration: %s", origin.describe())
    try:
        spec = parse_socket_spec(socket_override or config.milter.socket)
    except ValueError as e:
        raise ConfigError(str(e), source=config.source, key="milter.socket") from None
    try:
        check_socket_free(spec)
    except SocketInUse as e:
        print(f"milterfilters: {e}", file=sys.stderr)
        return 2
    # load everything once here (`config --check`) so that a broken model, key file or
    # socket group fails fast, in the foreground
    verify_config(config, socket_override=socket_override)
    address = config.metrics.address
    if address is None:
        return Supervisor(config_path, config, spec).serve()
    return _serve_with_metrics(config_path, config, spec, address)


def _serve_with_metrics(
    config_path: str | None, config: Config, spec: SocketSpec, address: tuple[str, int]
) -> int:
    """Run the supervisor with ``/metrics`` and ``/healthz`` served on ``address``."""
    directory = MetricsDirectory()
    try:
        supervisor = Supervisor(config_path, config, spec, directory)
        try:
            exporter = Exporter(
                address, directory, restarts=lambda: supervisor.restarts, live_pids=supervisor.live_pids
            )
        except OSError as e:
            print(
                f"milterfilters: cannot serve metrics on {config.metrics.listen}: {e.strerror or e}",
                file=sys.stderr,
            )
            return 2
        exporter.start()
        try:
            return supervisor.serve()
        finally:
            exporter.close()
    finally:
        directory.remove()
