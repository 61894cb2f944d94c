"""The milter worker process: libmilter's event loop around the chain.

Started by the supervisor (:mod:`milterfilters.milter.server`), never by hand, with the
listening socket it owns and shares among its workers (``--listen-fd``). libmilter
runs its own signal thread that treats SIGHUP like SIGTERM, and Python never sees those
signals while ``milter.main()`` runs; so reloads arrive as ``reload`` lines on stdin from
the supervisor, read by a Python thread that swaps the chain. EOF on stdin (the
supervisor is gone) stops the worker.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import logging.handlers
import os
import socket
import sys
import tempfile
import threading

import Milter
import milter as libmilter

from milterfilters.api import build_chain
from milterfilters.config import Config, load_config
from milterfilters.config.socketspec import SocketSpec, parse_socket_spec
from milterfilters.core.chain import Chain
from milterfilters.core.metrics import Metrics
from milterfilters.core.schema import ConfigError
from milterfilters.core.services import Services
from milterfilters.metrics.models import report_live_models
from milterfilters.milter.adapter import MILTER_FLAGS, ChainHolder, make_milter_class

log = logging.getLogger("milterfilters.worker")

#: The largest milter packet libmilter accepts from the MTA. libmilter's default (64 KB) is
#: below what MTAs send in one packet: Postfix passes a header field of up to
#: ``header_size_limit`` (100 KB by default) whole, and a longer one makes libmilter drop the
#: connection mid-header, so the message is tempfailed on every retry. 16 MB is far above any
#: MTA's header limit; libmilter allocates only what a packet holds, never the limit.
MAX_PACKET_BYTES = 16 * 1024 * 1024


def _loaded_libmilter() -> str | None:
    """The file of the libmilter pymilter's extension runs on (it is linked dynamically)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libmilter.so" in path:
                    return path
    except OSError:
        pass
    return ctypes.util.find_library("milter")


def raise_packet_limit(limit: int = MAX_PACKET_BYTES) -> int | None:
    """Call libmilter's ``smfi_setmaxdatasize(limit)`` (pymilter does not wrap it), before
    ``smfi_main``; returns the previous limit, or None if libmilter could not be reached.

    ``dlopen`` of the library already loaded for pymilter returns that same library, so the
    setting is the one libmilter's reader checks.
    """
    path = _loaded_libmilter()
    if path is None:
        return None
    try:
        setmax = ctypes.CDLL(path).smfi_setmaxdatasize
    except (OSError, AttributeError):
        return None
    setmax.restype = ctypes.c_size_t
    setmax.argtypes = [ctypes.c_size_t]
    return int(setmax(limit))


#: a stderr line: time, logger, pid, level, message
STDERR_FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"
#: a syslog message after the priority: the ident with the pid (syslog adds the time and host)
SYSLOG_FORMAT = "milterfilters[%(process)d]: %(name)s %(levelname)s %(message)s"


def log_handler(config: Config) -> logging.Handler:
    """The handler ``[logging] target`` asks for: stderr, or syslog (facility mail) through the
    unix datagram socket ``[logging] syslog_socket``. Raises ConfigError, naming the key, when
    the syslog socket cannot be reached."""
    settings = config.logging
    if settings.target == "stderr":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(STDERR_FORMAT))
        return handler
    try:  # SysLogHandler ignores an unreachable socket at start (and retries at each line): check
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.connect(settings.syslog_socket)
        handler = logging.handlers.SysLogHandler(
            address=settings.syslog_socket, facility=logging.handlers.SysLogHandler.LOG_MAIL
        )
    except OSError as e:
        raise ConfigError(
            f"cannot reach syslog at {settings.syslog_socket}: {e.strerror or e}",
            source=config.source,
            key="logging.syslog_socket",
        ) from None
    handler.setFormatter(logging.Formatter(SYSLOG_FORMAT))
    return handler


def configure_logging(config: Config) -> None:
    """Send this process's logs where ``[logging]`` says, at its level. The new handler is made
    before the old one is removed, so on ConfigError the running log setup stays."""
    handler = log_handler(config)
    logging.basicConfig(level=getattr(logging, config.logging.level.upper()), handlers=[handler], force=True)


def _set_callbacks(milter_class: type[Milter.Base]) -> None:
    """Register the callbacks as pymilter's runmilter does (it gives no hook between
    opening the socket and serving, which we need to set the socket's mode and group)."""
    Milter.factory = milter_class
    libmilter.set_flags(MILTER_FLAGS)
    libmilter.set_exception_policy(Milter.TEMPFAIL)  # an escaped exception never accepts mail
    libmilter.set_connect_callback(Milter.connect_callback)
    libmilter.set_helo_callback(lambda ctx, host: ctx.getpriv().hello(host))
    libmilter.set_envfrom_callback(lambda ctx, *b: ctx.getpriv().envfrom_bytes(*b))
    libmilter.set_envrcpt_callback(lambda ctx, *b: ctx.getpriv().envrcpt_bytes(*b))
    libmilter.set_header_callback(lambda ctx, f, v: ctx.getpriv().header_bytes(f, v))
    libmilter.set_eoh_callback(lambda ctx: ctx.getpriv().eoh())
    libmilter.set_body_callback(lambda ctx, chunk: ctx.getpriv().body(chunk))
    libmilter.set_eom_callback(lambda ctx: ctx.getpriv().eom())
    libmilter.set_abort_callback(lambda ctx: ctx.getpriv().abort())
    libmilter.set_close_callback(Milter.close_callback)


def _placeholder_spec(spec: SocketSpec, directory: str) -> str:
    """A private address of ``spec``'s family for libmilter to open and be taken off."""
    if spec.family == "unix":
        return f"unix:{os.path.join(directory, 'placeholder.sock')}"
    return "inet6:0@::1" if spec.family == "inet6" else "inet:0@127.0.0.1"


def _listening_sockets(exclude: int) -> list[int]:
    """This process's listening stream sockets (by descriptor), but ``exclude``."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd == exclude:
            continue
        try:
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with probe:
            try:
                listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if probe.type == socket.SOCK_STREAM and listening:
                    found.append(fd)
            except OSError:
                pass
    return found


def adopt_listener(fd: int, spec: SocketSpec) -> None:
    """Make libmilter serve on the supervisor's listening socket ``fd`` (inherited).

    libmilter cannot be given a socket, but it keeps its listener in a static that
    ``smfi_main`` reuses when already open: so it opens a private placeholder of the same
    address family (libmilter drops connections of another family), and ``fd`` is put in the
    placeholder's descriptor. The placeholder is all this libmilter knows of, so a stopping
    worker never removes the shared unix socket's file. Raises OSError or ``libmilter.error``.
    """
    with tempfile.TemporaryDirectory(prefix="milterfilters-") as directory:
        libmilter.setconn(_placeholder_spec(spec, directory))
        libmilter.opensocket(False)
        (placeholder,) = _listening_sockets(exclude=fd)
        os.dup2(fd, placeholder, inheritable=False)
    os.close(fd)
    libmilter.setconn(spec.libmilter)  # what smfi_main names in its log lines


def worker_metrics(directory: str | None) -> Metrics:
    """In-memory metrics; with ``directory`` (``--metrics-dir``), exported to Prometheus
    through that multiprocess directory (see :mod:`milterfilters.metrics.exporter`)."""
    if directory is None:
        return Metrics()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # read when prometheus-client is imported
    from milterfilters.metrics.prometheus import PrometheusMetrics

    return PrometheusMetrics()


def _build_chain(config: Config, metrics: Metrics) -> Chain:
    """The chain of ``config`` counting into ``metrics``, its live models reported."""
    chain = build_chain(config, services=Services(metrics=metrics))
    report_live_models(metrics, chain)
    return chain


def _reload_loop(holder: ChainHolder, config_path: str | None, metrics: Metrics) -> None:
    """Read commands from the supervisor; ``reload`` rebuilds and swaps the chain."""
    for line in sys.stdin:
        command = line.strip()
        if command != "reload":
            continue
        try:
            config = load_config(config_path)
            chain = _build_chain(config, metrics)  # the supervisor ran config --check first
        except Exception as e:
            log.error("reload failed, keeping the running configuration: %s", e)
            continue
        try:
            configure_logging(config)
        except ConfigError as e:
            log.error("reload: keeping the current log target: %s", e)
        old = holder.replace(chain)
        log.info("reloaded configuration from %s", config.source)
        # Connections in flight keep using the old chain; its filters hold no per-message
        # state, so it is simply left to the garbage collector.
        del old
    log.info("supervisor gone (stdin closed); stopping")
    libmilter.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="milterfilters-worker")
    parser.add_argument("--config")
    parser.add_argument("--socket", required=True, help="the socket the supervisor listens on")
    parser.add_argument("--listen-fd", type=int, required=True, help="its inherited descriptor")
    parser.add_argument("--metrics-dir")
    args = parser.parse_args(argv)
    metrics = worker_metrics(args.metrics_dir)
    try:
        config = load_config(args.config)
        configure_logging(config)
        spec = parse_socket_spec(args.socket)
        chain = _build_chain(config, metrics)
    except (ConfigError, ValueError) as e:
        print(f"milterfilters: configuration error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        logging.getLogger("milterfilters.worker").exception("cannot build the filter chain")
        print(f"milterfilters: cannot start: {e}", file=sys.stderr)
        return 2
    holder = ChainHolder(chain)
    _set_callbacks(make_milter_class(holder))
    libmilter.settimeout(config.milter.timeout)
    if raise_packet_limit() is None:
        log.warning(
            "cannot raise libmilter's packet limit (64 KB): a header field longer than that "
            "ends the MTA's connection and the message is tempfailed"
        )
    libmilter.register(
        config.milter.name,
        data=lambda ctx: ctx.getpriv().data(),
        unknown=lambda ctx, cmd: ctx.getpriv().unknown(cmd),
        negotiate=Milter.negotiate_callback,
    )
    try:
        adopt_listener(args.listen_fd, spec)
    except (OSError, ValueError, libmilter.error) as e:
        print(f"milterfilters: cannot take over the socket {args.socket}: {e}", file=sys.stderr)
        return 2
    threading.Thread(
        target=_reload_loop, args=(holder, args.config, metrics), daemon=True, name="reload"
    ).start()
    names = ", ".join(link.name for link in chain.links) or "none"
    metrics.set("worker_serving", 1.0)
    log.info("listening on %s (filters: %s)", args.socket, names)
    libmilter.main()
    metrics.set("worker_serving", 0.0)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
