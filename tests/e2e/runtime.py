"""Shared plumbing of the end-to-end layer: loopback ports, the runtime folder, waiting,
processes, and the SASL accounts both MTAs accept."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
#: the domain the MTAs treat as local; mail to any other domain is relayed (into the same mailbox)
LOCAL_DOMAIN = "test.example"
MTA_HOSTNAME = "mx.test.example"
#: SASL accounts every MTA instance accepts for AUTH PLAIN/LOGIN (login -> password)
SASL_USERS: Mapping[str, str] = {"alice@test.example": "secret"}


class E2EError(RuntimeError):
    """A daemon of the end-to-end setup failed to start or to stop."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def make_runtime_dir(prefix: str = "mf-e2e-") -> Path:
    """A fresh directory under /tmp, mode 0755, so that the MTAs' unprivileged users reach sockets in it.

    (pytest's own tmp_path lives under a 0700 directory that user postfix cannot traverse.)
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def unique_token() -> str:
    """A short random token to make Subjects, Message-IDs and addresses unique per test."""
    return uuid.uuid4().hex[:12]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; raise :class:`TimeoutError` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def tcp_listening(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_listening(path: Path) -> bool:
    """True when something accepts connections on the unix socket ``path`` (not a stale file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


def run_command(argv: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short command to completion, capturing its output as text."""
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to disappear."""
    try:
        wait_until(lambda: not pid_alive(pid), timeout, f"pid {pid} to exit", interval=0.1)
    except TimeoutError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited, even if its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cyrus_sasldb_conf(sasldb: Path) -> str:
    """A Cyrus SASL application config: PLAIN and LOGIN checked against ``sasldb`` (no daemon)."""
    return f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {sasldb}\n"


def write_sasldb(
    path: Path, *, owner: str, group: str | None = None, users: Mapping[str, str] = SASL_USERS
) -> None:
    """A fresh Cyrus sasldb with ``users`` (login ``user@realm`` -> password), mode 0640."""
    path.unlink(missing_ok=True)
    for login, password in users.items():
        user, _, realm = login.partition("@")
        argv = ["saslpasswd2", "-c", "-p", "-f", str(path)] + (["-u", realm] if realm else []) + [user]
        result = run_command(argv, stdin=password)
        if result.returncode != 0:
            raise E2EError(f"saslpasswd2 failed: {result.stderr}")
    shutil.chown(path, owner, group)
    path.chmod(0o640)
