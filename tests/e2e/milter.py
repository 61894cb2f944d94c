"""The milter under test: ``milterfilters run`` as a process, and its decision log lines."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import tomli_w

from tests.support.defaultconfig import DEAD_NAMESERVER

from .runtime import LOOPBACK, E2EError, free_port, pid_alive, tail, tcp_listening, unix_listening, wait_until

Transport = Literal["unix", "inet"]


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_decision_line(line: str) -> dict[str, str] | None:
    """The fields of a ``milterfilters.decision`` log line (text or JSON format), or None."""
    if "milterfilters.decision" not in line:
        return None
    message = line.split("milterfilters.decision", 1)[1]
    brace = message.find("{")
    if brace >= 0 and message.rstrip().endswith("}"):
        try:
            record = json.loads(message[brace:])
        except ValueError:
            pass
        else:
            return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in record.items()}
    fields = {}
    for key, value in _FIELD.findall(message):
        fields[key] = json.loads(value) if value.startswith('"') else value
    return fields or None


class MilterProcess:
    """``milterfilters run`` in the foreground, with its own config file, socket and log.

    ``config`` is TOML text; the ``[milter]`` socket settings the MTA needs are merged in (the
    socket is passed with ``--socket``, a unix socket is made mode 0666 so user postfix can
    connect, unless ``config`` sets ``socket_mode``). The unix socket is ``workdir/milter.sock``
    unless ``socket_path`` puts it elsewhere (inside Postfix's queue directory, say). The process
    runs in its own process group, so the supervisor and its worker are signalled together.
    """

    def __init__(
        self,
        workdir: Path,
        config: str = "",
        *,
        transport: Transport = "unix",
        command: Sequence[str] | None = None,
        socket_path: Path | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o755)
        self.transport = transport
        self.config_path = workdir / "milterfilters.toml"
        self.log_path = workdir / "milter.log"
        self.socket_path = socket_path or workdir / "milter.sock"
        self.port = free_port() if transport == "inet" else 0
        self.command = list(command) if command else [str(Path(sys.executable).with_name("milterfilters"))]
        self.config_path.write_text(self._merged_config(config))
        self._proc: subprocess.Popen[bytes] | None = None

    def _merged_config(self, text: str) -> str:
        data = tomllib.loads(text)
        milter = data.setdefault("milter", {})
        milter.setdefault("socket_mode", "0666")
        milter.setdefault("workers", 1)  # worker_pids() and reload() expect one worker
        milter["socket"] = self.postfix_spec
        data.setdefault("logging", {}).setdefault("level", "info")
        # never the system resolver: a filter given no [dns] asks a dead loopback port
        data.setdefault("dns", {}).setdefault("nameservers", [DEAD_NAMESERVER])
        return tomli_w.dumps(data)

    @property
    def postfix_spec(self) -> str:
        """The socket in Postfix notation (``smtpd_milters``)."""
        return f"unix:{self.socket_path}" if self.transport == "unix" else f"inet:{LOOPBACK}:{self.port}"

    @property
    def sendmail_spec(self) -> str:
        """The socket in Sendmail / libmilter notation (``INPUT_MAIL_FILTER`` S=)."""
        return f"unix:{self.socket_path}" if self.transport == "unix" else f"inet:{self.port}@{LOOPBACK}"

    @property
    def pid(self) -> int | None:
        """The supervisor's PID while started."""
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        """True while the supervisor runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def listening(self) -> bool:
        """True when the socket accepts connections."""
        return unix_listening(self.socket_path) if self.transport == "unix" else tcp_listening(self.port)

    def start(self, timeout: float = 30.0) -> None:
        """Start the milter and wait until it serves: its socket accepts connections and the
        worker has logged "listening on" (after it set the socket's mode and group: root
        connects to the 0600 socket before that, user postfix would be refused)."""
        if self.running:
            raise E2EError("milter already running")
        offset = self.log_size()
        argv = [*self.command, "run", "--config", str(self.config_path), "--socket", self.postfix_spec]
        with self.log_path.open("ab") as log:
            log.write(f"--- {shlex.join(argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise E2EError(f"milter exited with {self._proc.returncode}:\n{tail(self.log_path)}")
            return self.listening and "listening on" in self.log_text(offset)

        try:
            wait_until(ready, timeout, f"the milter socket {self.postfix_spec}")
        except TimeoutError:
            self.kill()
            raise E2EError(f"milter did not listen in {timeout:g} s:\n{tail(self.log_path)}") from None

    def reload(self, config: str, timeout: float = 10.0) -> None:
        """Replace the configuration with TOML ``config`` and SIGHUP the supervisor (only it:
        libmilter in the worker would take SIGHUP for a stop); wait until the worker reports
        the reload. Raises E2EError if the reload is refused."""
        if self._proc is None or not self.running:
            raise E2EError("milter not running")
        offset = self.log_size()
        self.config_path.write_text(self._merged_config(config))
        os.kill(self._proc.pid, signal.SIGHUP)
        outcome: list[str] = []

        def reported() -> bool:
            text = self.log_text(offset)
            outcome.extend(
                m for m in ("reloaded configuration", "reload failed", "reload refused") if m in text
            )
            return bool(outcome)

        wait_until(reported, timeout, "the milter to report its reload")
        if outcome[0] != "reloaded configuration":
            raise E2EError(f"milter refused the reload:\n{self.log_text(offset)}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the supervisor (it stops its worker) and wait for it; SIGKILL the process
        group if it hangs. Returns the supervisor's exit status, or None if it was not running."""
        proc = self._proc
        if proc is None:
            return None
        workers = self.worker_pids()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(5)
        for pid in workers:  # a worker its supervisor failed to stop
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._proc = None
        return proc.returncode

    def worker_pids(self) -> list[int]:
        """The PIDs of the supervisor's children (the libmilter worker)."""
        if not self.running or self._proc is None:
            return []
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would: the unix socket file stays behind."""
        proc = self._proc
        if proc is None:
            return
        self._signal_group(signal.SIGKILL)
        proc.wait(10)
        self._proc = None

    def _signal_group(self, signum: int) -> None:
        """Signal supervisor and worker together (only while the supervisor is unreaped, so the
        group id cannot have been reused)."""
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signum)
        except ProcessLookupError:
            pass

    def log_text(self, since: int = 0) -> str:
        """The milter's log (stderr), from byte offset ``since``."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        """The log's current length: pass it as ``since`` to look only at what comes next."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def decisions(self, since: int = 0) -> list[dict[str, str]]:
        """The decisions logged after byte offset ``since``, as dicts of their fields
        (``queue_id``, ``stage``, ``client``, ``helo``, ``auth``, ``from``, ``rcpt``, ``action``,
        ``reply``, ``score``, ``symbols``, ...)."""
        return [d for d in map(parse_decision_line, self.log_text(since).splitlines()) if d is not None]

    def wait_for_decision(
        self,
        *,
        mail_from: str | None = None,
        queue_id: str | None = None,
        stage: str | None = None,
        match: Callable[[dict[str, str]], bool] | None = None,
        since: int = 0,
        timeout: float = 10.0,
    ) -> dict[str, str]:
        """The first decision logged after ``since`` whose fields match (``mail_from`` is
        compared with the ``from`` field); AssertionError with the log's tail if none comes."""

        def matches(d: dict[str, str]) -> bool:
            return (
                (mail_from is None or d.get("from", "").strip("<>") == mail_from)
                and (queue_id is None or d.get("queue_id") == queue_id)
                and (stage is None or d.get("stage") == stage)
                and (match is None or match(d))
            )

        found: list[dict[str, str]] = []

        def logged() -> bool:
            found.extend(d for d in self.decisions(since) if matches(d))
            return bool(found)

        try:
            wait_until(logged, timeout, "the decision log line")
        except TimeoutError:
            raise AssertionError(
                f"no decision with from={mail_from} queue_id={queue_id} stage={stage} in the milter log:\n"
                f"{tail(self.log_path)}"
            ) from None
        return found[0]
