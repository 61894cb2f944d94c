"""Milter socket specifications in Postfix and libmilter notation."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class SocketSpec:
    """Where the milter listens: a unix socket path, or a TCP host and port."""

    family: str  # "unix", "inet" or "inet6"
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def libmilter(self) -> str:
        """The spec as libmilter wants it: ``unix:/path`` or ``inet:PORT@HOST``."""
        if self.family == "unix":
            return f"unix:{self.path}"
        return f"{self.family}:{self.port}@{self.host}" if self.host else f"{self.family}:{self.port}"

    @property
    def postfix(self) -> str:
        """The spec as Postfix's ``smtpd_milters`` wants it."""
        if self.family == "unix":
            return f"unix:{self.path}"
        return f"{self.family}:{self.host or '0.0.0.0'}:{self.port}"


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text!r} in milter socket {spec!r}")
    return int(text)


def parse_socket_spec(spec: str) -> SocketSpec:
    """Parse ``unix:/path``, ``local:/path``, ``/path``, ``inet:HOST:PORT``,
    ``inet:PORT@HOST``, ``inet:PORT``, ``inet6:[::1]:PORT`` or ``inet6:PORT@::1``."""
    text = spec.strip()
    if text.startswith("/"):
        return SocketSpec("unix", path=text)
    family, sep, rest = text.partition(":")
    family = family.lower()
    if not sep or not rest:
        raise ValueError(f"milter socket {spec!r}: expected unix:/path, inet:HOST:PORT or inet:PORT@HOST")
    if family in ("unix", "local"):
        if not rest.startswith("/"):
            raise ValueError(f"milter socket {spec!r}: unix socket path must be absolute")
        return SocketSpec("unix", path=rest)
    if family not in ("inet", "inet6"):
        raise ValueError(f"milter socket {spec!r}: unknown family {family!r}")
    if "@" in rest:  # libmilter: PORT@HOST
        port, _, host = rest.partition("@")
        return SocketSpec(family, host=host.strip("[]"), port=_port(port, spec))
    if rest.isdigit():  # inet:PORT
        return SocketSpec(family, host="", port=_port(rest, spec))
    host, _, port = rest.rpartition(":")  # Postfix: HOST:PORT, [v6]:PORT
    host = host.strip("[]")
    if family == "inet6" or ":" in host:
        family = "inet6"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"milter socket {spec!r}: bad IPv6 address {host!r}") from None
    return SocketSpec(family, host=host, port=_port(port, spec))


def why_cannot_listen(spec: SocketSpec) -> str:
    """The system's reason a listener on ``spec`` cannot be made now, "" if none is seen.

    libmilter only says "cannot opensocket"; this gives the admin the cause.
    """
    if spec.family == "unix":
        directory = os.path.dirname(spec.path) or "/"
        if not os.path.isdir(directory):
            return f"directory {directory} does not exist"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"directory {directory} is not writable"
        return ""
    family = socket.AF_INET6 if spec.family == "inet6" else socket.AF_INET
    host = spec.host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, spec.port))
    except OSError as e:
        return e.strerror or str(e)
    return ""
