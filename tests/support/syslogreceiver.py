"""A stand-in for ``/dev/log``: a unix datagram socket whose messages a thread appends to a file,
one line each (the syslog priority ``<N>`` kept at the start), for daemons that log only to
syslog (Sendmail) and for the milter's ``[logging] target = "syslog"``."""

from __future__ import annotations

import socket
import threading
from pathlib import Path


class SyslogReceiver:
    """A /dev/log stand-in: a unix datagram socket whose messages a thread appends to a file."""

    def __init__(self, socket_path: Path, log_path: Path) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (world-writable, as /dev/log is) and start receiving."""
        self.socket_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.socket_path))
        self.socket_path.chmod(0o666)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._receive, args=(sock,), daemon=True)
        self._thread.start()

    def _receive(self, sock: socket.socket) -> None:
        with self.log_path.open("ab", buffering=0) as log:
            while self._sock is sock:
                try:
                    datagram = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                log.write(datagram.rstrip(b"\0\n") + b"\n")

    def stop(self) -> None:
        """Stop receiving and close the socket."""
        sock, self._sock = self._sock, None
        if self._thread is not None:
            self._thread.join(2)
        if sock is not None:
            sock.close()

    def lines(self) -> list[str]:
        """The messages received so far, one per datagram."""
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()

    def __enter__(self) -> SyslogReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
