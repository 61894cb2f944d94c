"""``milterfilters run``: a supervising parent around ``[milter] workers`` libmilter processes.

Why a parent: libmilter's signal thread turns SIGHUP into a stop and Python never sees the
signals while libmilter runs. The parent handles the signals instead:

* SIGHUP — validate the configuration file; if valid, tell every worker to reload (each swaps
  its chain; connections in flight finish on the old one); if invalid, log and keep running.
* SIGTERM/SIGINT — stop the workers (libmilter lets connections finish) and exit within
  ``[milter] stop_timeout`` seconds, then remove the unix socket.
* A worker dying unexpectedly — log, count, and start a new one in its place after a backoff
  that doubles while that worker keeps dying young (a crash loop) and starts over after one
  that ran for :attr:`Supervisor.stable_uptime`; the other workers keep serving meanwhile.

Workers on every core: one libmilter process holds one GIL, so the parent runs
``[milter] workers`` processes (default: one per CPU) accepting on one listening socket. The
parent owns the socket's whole lifecycle: it removes a stale unix socket, binds it (created
private, then given ``socket_mode`` and ``socket_group``), sets TCP_NODELAY on a TCP one,
makes it non-blocking, and passes it to each worker it starts (``--listen-fd``); it closes
and removes it at exit. Each worker is a fresh ``python -P -m milterfilters.milter.worker``
(no fork of this multi-threaded parent) that hands the inherited socket to libmilter
(:func:`milterfilters.milter.worker.adopt_listener`: libmilter keeps its listener in a static
that ``smfi_main`` reuses when already open, so the worker opens a private placeholder and
puts the shared socket in its place). The socket is non-blocking because every worker polls
it and all wake for one connection: libmilter treats the losers' EAGAIN as "try again",
where a blocking ``accept`` would hold a loser until the next connection, past a SIGTERM.
A worker that stops never removes the socket file (its libmilter knows only the placeholder).

State in a worker's memory is per worker: the ``memory`` rate-limit backend counts per
process (a sender gets up to N times its limit across N workers); ``redis`` is shared.

With ``[metrics] listen`` the parent also serves ``/metrics`` and ``/healthz``
(:mod:`milterfilters.metrics.exporter`): it makes a per-run metrics directory, hands it to
each worker (``--metrics-dir``) and removes it at exit.
"""

from __future__ import annotations

import grp
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

from milterfilters.config import Config, load_config
from milterfilters.config.discovery import find_config
from milterfilters.config.socketspec import SocketSpec, parse_socket_spec, why_cannot_listen
from milterfilters.config.verify import verify_config
from milterfilters.core.schema import ConfigError
from milterfilters.metrics.exporter import MULTIPROC_ENV, Exporter, MetricsDirectory
from milterfilters.milter.worker import configure_logging

log = logging.getLogger("milterfilters.supervisor")

#: the exit status of a worker that could not start (configuration, socket): the run ends
#: when no worker has started yet and none is serving, since a restart would fail the same
#: way; a worker failing beside a serving one (its files changed under it) is restarted
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


@dataclass
class WorkerSlot:
    """One of the ``workers`` places: the process in it now and its restart schedule."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 0.0
    #: when to start the next process here (after a death), or None while one runs
    restart_at: float | None = None


def open_listener(spec: SocketSpec, config: Config) -> socket.socket:
    """Bind and listen on ``spec`` as ``[milter]`` says; raises OSError/KeyError.

    A unix socket is created mode 0600 and then given ``socket_mode`` and ``socket_group``;
    a TCP one gets TCP_NODELAY (accepted connections inherit it on Linux). The socket is
    non-blocking and inheritable: the workers share it (see the module docstring).
    """
    if spec.family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(spec.path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(spec.path, int(config.milter.socket_mode, 8))
        if config.milter.socket_group:
            os.chown(spec.path, -1, grp.getgrnam(config.milter.socket_group).gr_gid)
    else:
        family = socket.AF_INET6 if spec.family == "inet6" else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((spec.host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), spec.port))
        except OSError:
            sock.close()
            raise
    sock.listen(socket.SOMAXCONN)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def close_listener(listener: socket.socket | None, spec: SocketSpec) -> None:
    """Close the shared socket and remove a unix socket's file (both may be done already)."""
    if listener is not None:
        listener.close()
    if spec.family == "unix":
        try:
            os.unlink(spec.path)
        except FileNotFoundError:
            pass


def warn_per_worker_state(config: Config) -> None:
    """Warn when a filter keeps counts in process memory while several workers run."""
    workers = config.milter.worker_count
    if workers < 2:
        return
    for spec in config.enabled_filters:
        if getattr(spec.options, "backend", None) == "memory":
            log.warning(
                '[%s] backend = "memory" with %d workers: each worker counts on its own, so a '
                'sender may get up to %d times its limit; use backend = "redis" for one count',
                spec.name,
                workers,
                workers,
            )


class Supervisor:
    """Runs and watches the worker processes; handles SIGHUP, SIGTERM and crashes."""

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
        *,
        listener: socket.socket | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.spec = spec
        self.metrics_dir = metrics_dir
        self.listener = listener
        self.slots = [WorkerSlot(i) for i in range(config.milter.worker_count)]
        self.stopping = False
        self.reload_requested = False
        #: workers restarted (the metric), and of them those that had started and then died
        self.restarts = 0
        self.crashes = 0

    def live_pids(self) -> list[int]:
        """The pids of the workers running now (as last polled; safe from any thread)."""
        procs = [slot.proc for slot in list(self.slots)]
        return [p.pid for p in procs if p is not None and p.returncode is None]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stopping = True

    def _start_worker(self, slot: WorkerSlot) -> None:
        slot.proc = self._spawn()
        slot.started = time.monotonic()
        slot.restart_at = None
        log.info("started worker pid %d on %s", slot.proc.pid, self.spec.libmilter)

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Start one worker process on the shared listener."""
        if self.listener is None:
            self.listener = open_listener(self.spec, self.config)
        fd = self.listener.fileno()
        # -P: the worker imports the installed milterfilters, never a package that happens to
        # sit in the current directory
        cmd = [sys.executable, "-P", "-m", "milterfilters.milter.worker", "--socket", self.spec.libmilter]
        cmd += ["--listen-fd", str(fd)]
        if self.config_path:
            cmd += ["--config", self.config_path]
        env = None
        if self.metrics_dir is not None:
            cmd += ["--metrics-dir", self.metrics_dir.path]
            env = {**os.environ, MULTIPROC_ENV: self.metrics_dir.path}
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, env=env, pass_fds=(fd,))

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
        if config.milter.worker_count != self.config.milter.worker_count:
            log.warning("reload: a changed [milter] workers takes effect only after a restart")
        if config.metrics != self.config.metrics:
            log.warning("reload: a changed [metrics] section takes effect only after a restart")
        self.config = config
        try:
            configure_logging(config)
        except ConfigError as e:
            log.error("reload: keeping the current log target: %s", e)
        for slot in self.slots:
            self._send_reload(slot)

    def _send_reload(self, slot: WorkerSlot) -> None:
        proc = slot.proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            return
        try:
            proc.stdin.write(b"reload\n")
            proc.stdin.flush()
            log.info("reload sent to worker pid %d", proc.pid)
        except OSError as e:
            log.error("cannot reach worker pid %d to reload: %s", proc.pid, e)

    def _stop_workers(self) -> None:
        running = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.milter.stop_timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()

    def _check(self, slot: WorkerSlot, now: float) -> int | None:
        """Poll one slot: note a death and schedule its restart, or start the replacement when
        due. Returns an exit status when the whole run must end (a worker cannot start)."""
        proc = slot.proc
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                self._start_worker(slot)
            return None
        if proc is None:
            return None
        code = proc.poll()
        if code is None:
            return None
        others_serve = any(s is not slot and s.proc is not None and s.proc.poll() is None for s in self.slots)
        if code == STARTUP_FAILURE and not self.crashes and not others_serve:
            log.error("worker failed to start")
            return code
        self.restarts += 1
        if code != STARTUP_FAILURE:
            self.crashes += 1
        if self.metrics_dir is not None:
            self.metrics_dir.process_dead(proc.pid)
        if now - slot.started >= self.stable_uptime or not slot.backoff:
            slot.backoff = self.initial_backoff
        log.error("worker pid %d exited with %d; restarting in %.0fs", proc.pid, code, slot.backoff)
        slot.restart_at = now + slot.backoff
        slot.backoff = min(slot.backoff * 2, 30.0)
        return None

    def serve(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        try:
            for slot in self.slots:
                self._start_worker(slot)
            while not self.stopping:
                if self.reload_requested:
                    self._reload()
                now = time.monotonic()
                for slot in self.slots:
                    failed = self._check(slot, now)
                    if failed is not None:
                        return failed
                time.sleep(0.1)
        finally:
            self._stop_workers()
            close_listener(self.listener, self.spec)
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
    warn_per_worker_state(config)
    try:
        listener = open_listener(spec, config)
    except (OSError, KeyError) as e:
        reason = why_cannot_listen(spec) or (e.strerror if isinstance(e, OSError) else None) or str(e)
        print(f"milterfilters: cannot listen on {spec.postfix}: {reason}", file=sys.stderr)
        return 2
    address = config.metrics.address
    try:
        if address is None:
            return Supervisor(config_path, config, spec, listener=listener).serve()
        return _serve_with_metrics(config_path, config, spec, address, listener)
    finally:
        close_listener(listener, spec)


def _serve_with_metrics(
    config_path: str | None,
    config: Config,
    spec: SocketSpec,
    address: tuple[str, int],
    listener: socket.socket,
) -> int:
    """Run the supervisor with ``/metrics`` and ``/healthz`` served on ``address``."""
    directory = MetricsDirectory()
    try:
        supervisor = Supervisor(config_path, config, spec, directory, listener=listener)
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
