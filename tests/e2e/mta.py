"""Real MTAs on loopback for end-to-end tests.

The pieces, each usable on its own:

* :class:`MilterProcess` runs ``milterfilters run`` with a given TOML configuration and reads
  its decision log lines back.
* :class:`PostfixInstance` is a private Postfix (own config, queue and data directories) that
  delivers every accepted message into one Maildir; it never touches ``/etc/postfix``.
* :class:`SendmailInstance` runs Sendmail from its unpacked Debian packages in a private mount
  namespace, in queue-only mode; accepted messages are read back from its queue files.
* :class:`SmtpClient` speaks SMTP and returns the reply of every stage (:class:`SmtpTranscript`).
* :class:`Maildir` and :class:`SendmailQueue` wait for a delivered message by Subject or Message-ID.
* :class:`MailStack` ties one milter to one MTA; :class:`StackPool` starts stacks on demand,
  shares them between tests and stops every daemon by PID at the end.

Everything listens on 127.0.0.1 on ports chosen by the kernel, under a runtime directory in
/tmp that the unprivileged Postfix and Sendmail processes can traverse.
"""

from __future__ import annotations

import base64
import dataclasses
import email
import email.message
import email.policy
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import tomli_w

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-test-deps.sh"
LOOPBACK = "127.0.0.1"
#: the domain the MTAs treat as local; mail to any other domain is relayed (into the same Maildir)
LOCAL_DOMAIN = "test.example"
MTA_HOSTNAME = "mx.test.example"
#: SASL accounts every MTA instance accepts for AUTH PLAIN/LOGIN
SASL_USERS: Mapping[str, str] = {"alice@test.example": "secret"}
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
#: where scripts/install-test-deps.sh unpacks Sendmail (override with MILTERFILTERS_SENDMAIL_ROOT)
DEFAULT_SENDMAIL_ROOT = Path("/var/cache/milterfilters-test/sendmail/root")

Transport = Literal["unix", "inet"]


class E2EError(RuntimeError):
    """A daemon of the end-to-end setup failed to start or to stop."""


# --------------------------------------------------------------------------- small helpers


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


def _tcp_listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _unix_listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


def _run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to disappear."""
    try:
        wait_until(lambda: not _pid_alive(pid), timeout, f"pid {pid} to exit", interval=0.1)
    except TimeoutError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
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


# --------------------------------------------------------------------------- messages


def make_message(
    subject: str,
    *,
    body: str = "Hello from the end-to-end tests.\r\n",
    sender: str = "sender@client.example",
    to: str = "user@test.example",
    message_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """A small RFC 5322 message with CRLF line ends and a unique Message-ID (unless given)."""
    message_id = message_id or f"<{unique_token()}@client.example>"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        "Date: Sat, 28 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\r\n", "\n").replace("\n", "\r\n")).encode()


def _message_id(message: bytes) -> str | None:
    value = email.message_from_bytes(message, policy=email.policy.compat32).get("Message-ID")
    return str(value).strip() if value else None


def _header_matches(msg: email.message.Message, subject: str | None, message_id: str | None) -> bool:
    if subject is not None and str(msg.get("Subject", "")) != subject:
        return False
    return message_id is None or str(msg.get("Message-ID", "")).strip() == message_id.strip()


class Mailbox(Protocol):
    """Where an MTA puts accepted mail: a Maildir (Postfix) or a queue (Sendmail)."""

    def messages(self) -> list[email.message.Message]: ...

    def find(
        self, *, subject: str | None = None, message_id: str | None = None
    ) -> email.message.Message | None: ...

    def wait_for(
        self, *, subject: str | None = None, message_id: str | None = None, timeout: float = 10.0
    ) -> email.message.Message: ...

    def assert_absent(
        self, *, subject: str | None = None, message_id: str | None = None, grace: float = 1.0
    ) -> None: ...


class _FileMailbox:
    """Shared lookup logic: parse each message file once, match by Subject / Message-ID."""

    def __init__(self) -> None:
        self._cache: dict[Path, email.message.Message] = {}

    def _files(self) -> Iterator[Path]:
        raise NotImplementedError

    def _parse(self, path: Path) -> email.message.Message | None:
        raise NotImplementedError

    def messages(self) -> list[email.message.Message]:
        """Every message currently delivered (parsed; files read once)."""
        out = []
        for path in sorted(self._files()):
            if path not in self._cache:
                parsed = self._parse(path)
                if parsed is None:
                    continue
                self._cache[path] = parsed
            out.append(self._cache[path])
        return out

    def find(
        self, *, subject: str | None = None, message_id: str | None = None
    ) -> email.message.Message | None:
        """The delivered message with this Subject and/or Message-ID, or None."""
        if subject is None and message_id is None:
            raise ValueError("give a subject or a message_id")
        for msg in self.messages():
            if _header_matches(msg, subject, message_id):
                return msg
        return None

    def wait_for(
        self, *, subject: str | None = None, message_id: str | None = None, timeout: float = 10.0
    ) -> email.message.Message:
        """Wait until the message is delivered and return it; raise TimeoutError if it never is."""
        found: list[email.message.Message] = []

        def delivered() -> bool:
            msg = self.find(subject=subject, message_id=message_id)
            if msg is not None:
                found.append(msg)
            return bool(found)

        wait_until(delivered, timeout, f"delivery of subject={subject!r} message_id={message_id!r}")
        return found[0]

    def assert_absent(
        self, *, subject: str | None = None, message_id: str | None = None, grace: float = 1.0
    ) -> None:
        """Assert that the message is not delivered, giving the MTA ``grace`` seconds to prove otherwise."""
        try:
            msg = self.wait_for(subject=subject, message_id=message_id, timeout=grace)
        except TimeoutError:
            return
        raise AssertionError(f"message was delivered but should not have been:\n{msg}")


class Maildir(_FileMailbox):
    """A Maildir that virtual(8) delivers into (reads ``new/`` and ``cur/``)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _files(self) -> Iterator[Path]:
        for sub in ("new", "cur"):
            folder = self.path / sub
            if folder.is_dir():
                yield from folder.iterdir()

    def _parse(self, path: Path) -> email.message.Message | None:
        try:
            return email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        except FileNotFoundError:  # moved from new/ to cur/ meanwhile
            return None


class SendmailQueue(_FileMailbox):
    """Sendmail's queue directory in queue-only mode: each message is a qf (envelope and
    headers) plus a df (body) file; a message is complete once its qf file exists."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _files(self) -> Iterator[Path]:
        if self.path.is_dir():
            yield from self.path.glob("qf*")

    def _parse(self, path: Path) -> email.message.Message | None:
        try:
            # macro references are stored as byte 0x81 + name: show them as $name
            control = path.read_bytes().decode("latin-1").replace("\x81", "$")
            body = (path.parent / ("df" + path.name[2:])).read_bytes()
        except FileNotFoundError:
            return None
        return email.message_from_bytes(
            qf_headers(control).encode() + b"\n" + body, policy=email.policy.compat32
        )


def qf_headers(control: str) -> str:
    """The header block of a Sendmail qf file: its ``H`` lines without the ``?flags?`` conditions
    (a header whose condition is not met would not be written; tests see all of them)."""
    out: list[str] = []
    in_header = False
    for line in control.splitlines():
        if line.startswith("H"):
            text = line[1:]
            if text.startswith("?"):
                text = text[text.index("?", 1) + 1 :]
            out.append(text)
            in_header = True
        elif in_header and line[:1] in (" ", "\t"):
            out.append(line)
        else:
            in_header = False
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- SMTP client


@dataclass(frozen=True)
class Reply:
    """One SMTP reply."""

    code: int
    text: str

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


#: stands for a connection the server closed without a reply
DISCONNECTED = Reply(0, "connection closed by server")


@dataclass
class SmtpTranscript:
    """The replies of one SMTP transaction, stage by stage (None: stage not reached)."""

    banner: Reply | None = None
    ehlo: Reply | None = None
    xclient: Reply | None = None
    auth: Reply | None = None
    mail: Reply | None = None
    rcpt: dict[str, Reply] = field(default_factory=dict)
    data: Reply | None = None
    eom: Reply | None = None

    @property
    def final(self) -> Reply:
        """The last reply received: the one that decided the transaction."""
        for reply in (self.eom, self.data):
            if reply is not None:
                return reply
        if self.rcpt:
            refused = [r for r in self.rcpt.values() if not r.positive]
            return refused[-1] if len(refused) == len(self.rcpt) else next(iter(self.rcpt.values()))
        for reply in (self.mail, self.auth, self.xclient, self.ehlo, self.banner):
            if reply is not None:
                return reply
        return DISCONNECTED

    @property
    def accepted(self) -> bool:
        """True when the message was accepted at end of data."""
        return self.eom is not None and self.eom.code == 250

    @property
    def queue_id(self) -> str | None:
        """The queue id from the final 250 reply (Postfix: "queued as X"; Sendmail: "X Message accepted")."""
        if not self.accepted or self.eom is None:
            return None
        match = re.search(r"queued as (\w+)", self.eom.text) or re.match(
            r"(?:\d\.\d\.\d )?(\w+) Message accepted", self.eom.text
        )
        return match.group(1) if match else None

    def describe(self) -> str:
        parts = [f"{stage}={reply}" for stage, reply in self._stages() if reply is not None]
        return "; ".join(parts)

    def _stages(self) -> Iterator[tuple[str, Reply | None]]:
        yield "banner", self.banner
        yield "ehlo", self.ehlo
        yield "xclient", self.xclient
        yield "auth", self.auth
        yield "mail", self.mail
        for rcpt, reply in self.rcpt.items():
            yield f"rcpt<{rcpt}>", reply
        yield "data", self.data
        yield "eom", self.eom


def xtext(value: str) -> str:
    """RFC 3461 xtext, as XCLIENT attribute values need."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


def dot_stuffed(message: bytes) -> bytes:
    """``message`` with CRLF line ends, leading dots doubled and the terminating ``.`` line."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


@dataclass(frozen=True)
class SmtpClient:
    """How the test client presents itself; :meth:`send` runs one transaction.

    ``xclient`` (Postfix) is sent as ``XCLIENT KEY=VALUE ...`` (e.g. ADDR, NAME, LOGIN, HELO)
    followed by a new EHLO, named ``xclient["HELO"]`` when given. ``auth`` is a
    (login, password) pair sent as AUTH PLAIN. ``source_address`` binds the client side, e.g.
    ``127.0.0.7``, to present another loopback address (for MTAs without XCLIENT).
    """

    helo: str = "client.example"
    xclient: Mapping[str, str] | None = None
    auth: tuple[str, str] | None = None
    source_address: str | None = None
    timeout: float = 30.0

    def send(
        self, port: int, message: bytes, *, mail_from: str, rcpt_to: Sequence[str], host: str = LOOPBACK
    ) -> SmtpTranscript:
        """Run one SMTP transaction and return every reply; never raises on an SMTP refusal.

        The transaction stops at the first refusal (of MAIL, of every RCPT, of DATA); the
        end-of-data reply is ``eom``. Recipients the server refuses are skipped, as a real
        client would.
        """
        return _transaction(self, host, port, message, mail_from, rcpt_to)


def _transaction(
    c: SmtpClient, host: str, port: int, message: bytes, mail_from: str, rcpt_to: Sequence[str]
) -> SmtpTranscript:
    import smtplib

    t = SmtpTranscript()
    source = (c.source_address, 0) if c.source_address else None
    client = smtplib.SMTP(timeout=c.timeout, source_address=source)
    try:
        t.banner = Reply(*_decoded(client.connect(host, port)))
        if t.banner.code != 220:
            return t
        t.ehlo = Reply(*_decoded(client.ehlo(c.helo)))
        if t.ehlo.code != 250:
            return t
        if c.xclient:
            args = " ".join(f"{key.upper()}={xtext(value)}" for key, value in c.xclient.items())
            t.xclient = Reply(*_decoded(client.docmd("XCLIENT", args)))
            if t.xclient.code != 220:
                return t
            t.ehlo = Reply(*_decoded(client.ehlo(c.xclient.get("HELO", c.helo))))
        if c.auth:
            login, password = c.auth
            token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
            t.auth = Reply(*_decoded(client.docmd("AUTH", f"PLAIN {token}")))
            if t.auth.code != 235:
                return t
        t.mail = Reply(*_decoded(client.docmd("MAIL", f"FROM:<{mail_from}>")))
        if not t.mail.positive:
            return t
        for rcpt in rcpt_to:
            t.rcpt[rcpt] = Reply(*_decoded(client.docmd("RCPT", f"TO:<{rcpt}>")))
        if not any(r.positive for r in t.rcpt.values()):
            return t
        t.data = Reply(*_decoded(client.docmd("DATA")))
        if t.data.code != 354:
            return t
        client.send(dot_stuffed(message))
        t.eom = Reply(*_decoded(client.getreply()))
    except smtplib.SMTPServerDisconnected:
        _record_disconnect(t)
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
    return t


def _decoded(reply: tuple[int, bytes]) -> tuple[int, str]:
    code, text = reply
    return code, text.decode("utf-8", "replace").replace("\n", " ")


def _record_disconnect(t: SmtpTranscript) -> None:
    """Mark the first stage that did not get its reply as disconnected."""
    for name in ("banner", "ehlo", "mail"):
        if getattr(t, name) is None:
            setattr(t, name, DISCONNECTED)
            return
    if t.data is None:
        t.data = DISCONNECTED
    elif t.eom is None:
        t.eom = DISCONNECTED


# --------------------------------------------------------------------------- the milter


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
    connect). The process runs in its own process group, so the supervisor and its worker are
    signalled together.
    """

    def __init__(
        self,
        workdir: Path,
        config: str = "",
        *,
        transport: Transport = "unix",
        command: Sequence[str] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o755)
        self.transport = transport
        self.config_path = workdir / "milterfilters.toml"
        self.log_path = workdir / "milter.log"
        self.socket_path = workdir / "milter.sock"
        self.port = free_port() if transport == "inet" else 0
        self.command = list(command) if command else [str(Path(sys.executable).with_name("milterfilters"))]
        self.config_path.write_text(self._merged_config(config))
        self._proc: subprocess.Popen[bytes] | None = None

    def _merged_config(self, text: str) -> str:
        data = tomllib.loads(text)
        milter = data.setdefault("milter", {})
        milter.setdefault("socket_mode", "0666")
        milter["socket"] = self.postfix_spec
        data.setdefault("logging", {}).setdefault("level", "info")
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
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def listening(self) -> bool:
        """True when the socket accepts connections."""
        return _unix_listening(self.socket_path) if self.transport == "unix" else _tcp_listening(self.port)

    def start(self, timeout: float = 30.0) -> None:
        """Start the milter and wait until its socket accepts connections."""
        if self.running:
            raise E2EError("milter already running")
        argv = [*self.command, "run", "--config", str(self.config_path), "--socket", self.postfix_spec]
        with self.log_path.open("ab") as log:
            log.write(f"--- {shlex.join(argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise E2EError(f"milter exited with {self._proc.returncode}:\n{_tail(self.log_path)}")
            return self.listening

        try:
            wait_until(ready, timeout, f"the milter socket {self.postfix_spec}")
        except TimeoutError:
            self.kill()
            raise E2EError(f"milter did not listen in {timeout:g} s:\n{_tail(self.log_path)}") from None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait for the exit (libmilter takes a few seconds); SIGKILL if it hangs.

        Returns the exit status, or None when it was not running.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(5)
        self._signal_group(signal.SIGKILL)  # a worker left behind by its supervisor
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
                f"{_tail(self.log_path)}"
            ) from None
        return found[0]


# --------------------------------------------------------------------------- Postfix


def _postfix_main_cf(
    base: Path, milter: str | None, *, relay_all: bool, extra: Mapping[str, str]
) -> dict[str, str]:
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(base / "spool"),
        "data_directory": str(base / "data"),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": MTA_HOSTNAME,
        "mydomain": LOCAL_DOMAIN,
        "myorigin": "$mydomain",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "mydestination": "",
        "local_recipient_maps": "",
        # final delivery: virtual(8) puts every recipient of every domain into one Maildir
        "virtual_mailbox_domains": LOCAL_DOMAIN,
        "virtual_mailbox_base": str(base / "mail"),
        "virtual_mailbox_maps": "static:inbox/",
        "virtual_uid_maps": "static:65534",
        "virtual_gid_maps": "static:65534",
        "default_transport": "virtual",
        "relay_transport": "virtual",
        # no DNS, nothing leaves the box
        "disable_dns_lookups": "yes",
        "smtp_host_lookup": "native",
        "smtpd_peername_lookup": "no",
        "maillog_file_prefixes": "/tmp",
        "maillog_file": str(base / "maillog"),
        "biff": "no",
        "smtputf8_enable": "no",
        "smtpd_banner": "$myhostname ESMTP test",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
        # Cyrus SASL with sasldb; also what makes XCLIENT LOGIN= set {auth_authen}
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "cyrus",
        "smtpd_sasl_path": "smtpd",
        "smtpd_milters": milter or "",
        "non_smtpd_milters": "",
        "milter_default_action": "tempfail",
        "milter_protocol": "6",
        "milter_connect_timeout": "5s",
        "milter_command_timeout": "10s",
        "milter_content_timeout": "30s",
        "milter_macro_daemon_name": "MTA-IN",
        "milter_connect_macros": "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} "
        "{client_port} {client_ptr} {client_connections}",
        "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
        "{mail_mailer}",
        "milter_end_of_data_macros": "i {auth_authen} {auth_type} {client_addr}",
        "queue_run_delay": "10s",
        "minimal_backoff_time": "10s",
        "maximal_backoff_time": "20s",
    }
    if relay_all:
        # every domain is a relay domain, so Postfix never refuses relaying: the milter decides
        settings["relay_domains"] = "static:all"
        settings["smtpd_relay_restrictions"] = "reject_unauth_destination"
    settings.update(extra)
    return settings


_POSTFIX_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    """A private Postfix on 127.0.0.1:``port`` whose smtpd passes mail through ``milter``.

    ``relay_all`` makes every domain a relay domain (``relay_domains = static:all``) so that
    relaying is the milter's decision; ``main_cf`` overrides or adds main.cf settings.
    Accepted mail of every recipient lands in :attr:`maildir`.
    """

    def __init__(
        self,
        base: Path,
        *,
        milter: str | None,
        port: int | None = None,
        relay_all: bool = False,
        main_cf: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base
        self.port = port or free_port()
        self.config_dir = base / "etc"
        self.log_path = base / "maillog"
        self.maildir = Maildir(base / "mail" / "inbox")
        self.settings = _postfix_main_cf(base, milter, relay_all=relay_all, extra=main_cf or {})
        self._master_pid: int | None = None

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(["postfix", "-c", str(self.config_dir), *args])

    def _write_config(self) -> None:
        for sub in ("etc/sasl", "spool", "data", "mail"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        shutil.chown(self.base / "data", "postfix", "postfix")
        shutil.chown(self.base / "mail", "nobody", "nogroup")
        main_cf = "".join(f"{key} = {value}\n" for key, value in self.settings.items())
        (self.config_dir / "main.cf").write_text(main_cf)
        (self.config_dir / "master.cf").write_text(
            _POSTFIX_MASTER_CF.format(listen=f"{LOOPBACK}:{self.port}")
        )
        # Debian's Postfix reads $config_directory/sasl/smtpd.conf (cyrus_sasl_config_path is ignored)
        sasldb = self.config_dir / "sasl" / "sasldb2"
        (self.config_dir / "sasl" / "smtpd.conf").write_text(_cyrus_sasldb_conf(sasldb))
        write_sasldb(sasldb, owner="root", group="postfix")
        _age_config_files(self.config_dir)

    def start(self, timeout: float = 15.0) -> None:
        """Write the configuration, start the master and wait for the SMTP port."""
        self._write_config()
        started = self._postfix("start")  # also creates the queue directories
        if started.returncode != 0:
            raise E2EError(f"postfix start failed: {started.stderr}\n{_tail(self.log_path)}")
        pid_file = self.base / "spool" / "pid" / "master.pid"
        wait_until(pid_file.exists, timeout, "postfix master.pid")
        self._master_pid = int(pid_file.read_text().split()[0])
        try:
            wait_until(lambda: _tcp_listening(self.port), timeout, f"postfix on port {self.port}")
        except TimeoutError:
            self.stop()
            raise E2EError(f"postfix did not listen:\n{_tail(self.log_path)}") from None

    def reload(self, **settings: str) -> None:
        """Change main.cf settings and reload: new SMTP sessions use them."""
        self.settings.update(settings)
        for key, value in settings.items():
            _run(["postconf", "-c", str(self.config_dir), "-e", f"{key} = {value}"]).check_returncode()
        _age_config_files(self.config_dir)
        self._postfix("reload").check_returncode()

    def stop(self, timeout: float = 15.0) -> None:
        """``postfix stop``, then wait for the master PID; SIGKILL it if it lingers."""
        pid = self._master_pid
        if pid is None:
            return
        self._postfix("stop")
        if not _wait_pid_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_pid_gone(pid, 5)
        self._master_pid = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _age_config_files(config_dir: Path) -> None:
    """Backdate main.cf and master.cf: Postfix waits, polling, until a config file it reads is
    more than a second old (so as not to read one being edited) -- seconds per start otherwise."""
    past = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(config_dir / name, (past, past))


def _cyrus_sasldb_conf(sasldb: Path) -> str:
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
        result = _run(argv, input=password)
        if result.returncode != 0:
            raise E2EError(f"saslpasswd2 failed: {result.stderr}")
    shutil.chown(path, owner, group)
    path.chmod(0o640)


# --------------------------------------------------------------------------- Sendmail


def sendmail_root() -> Path:
    """The folder Sendmail's Debian packages are unpacked into (see scripts/install-test-deps.sh)."""
    return Path(os.environ.get("MILTERFILTERS_SENDMAIL_ROOT", DEFAULT_SENDMAIL_ROOT))


def ensure_sendmail_unpacked(root: Path | None = None) -> Path:
    """Return the unpacked Sendmail, unpacking it with the install script's ``--sendmail`` step
    if it is missing; raise E2EError (never skip) when that is impossible."""
    root = root or sendmail_root()
    if not (root / "usr/libexec/sendmail/sendmail").exists():
        result = _run(["bash", str(INSTALL_SCRIPT), "--sendmail", str(root)])
        if result.returncode != 0 or not (root / "usr/libexec/sendmail/sendmail").exists():
            raise E2EError(
                f"Sendmail is not unpacked at {root} and {INSTALL_SCRIPT} --sendmail failed "
                f"(run it as root):\n{result.stdout}{result.stderr}"
            )
    return root


_SENDMAIL_CONNECT_MACROS = (
    "j _ {daemon_name} {if_name} {if_addr} {client_addr} {client_name} {client_port}".split()
)
_SENDMAIL_ENVFROM_MACROS = (
    "i {auth_type} {auth_authen} {auth_ssf} {auth_author} {mail_mailer} {mail_host} {mail_addr}".split()
)
_SENDMAIL_MC = """\
divert(-1)
include(`{cf}/m4/cf.m4')
divert(0)dnl
VERSIONID(`milterfilters e2e')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{hostname}')dnl
define(`QUEUE_DIR', `{base}/mqueue')dnl
define(`ALIAS_FILE', `')dnl
define(`STATUS_FILE', `{base}/statistics')dnl
define(`confPID_FILE', `{base}/sendmail.pid')dnl
define(`confSERVICE_SWITCH_FILE', `{base}/service.switch')dnl
define(`confHOSTS_FILE', `{base}/hosts')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDONT_BLAME_SENDMAIL', `GroupWritableDirPathSafe,ForwardFileInUnsafeDirPath,TrustStickyBit')dnl
define(`confDELIVERY_MODE', `queueonly')dnl
define(`confLOG_LEVEL', `9')dnl
define(`confMILTER_LOG_LEVEL', `12')dnl
define(`confMILTER_MACROS_CONNECT', `{connect_macros}')dnl
define(`confMILTER_MACROS_ENVFROM', `{envfrom_macros}')dnl
define(`confMILTER_MACROS_EOM', `i, {{msg_id}}')dnl
define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl
TRUST_AUTH_MECH(`PLAIN LOGIN')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`accept_unqualified_senders')dnl
FEATURE(`promiscuous_relay')dnl
DAEMON_OPTIONS(`Port={port}, Addr={listen}, Name=MTA-SM')dnl
INPUT_MAIL_FILTER(`milterfilters', `S={milter}, F=T, T=C:5s;S:10s;R:10s;E:30s')dnl
LOCAL_DOMAIN(`{domain}')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""


class SyslogReceiver:
    """A /dev/log stand-in: a unix datagram socket whose messages a thread appends to a file."""

    def __init__(self, socket_path: Path, log_path: Path) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
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
        sock, self._sock = self._sock, None
        if self._thread is not None:
            self._thread.join(2)
        if sock is not None:
            sock.close()


class SendmailInstance:
    """Sendmail from its unpacked Debian packages on 127.0.0.1:``port``, queue-only, with the
    milter at ``milter`` (libmilter notation) as its only INPUT_MAIL_FILTER (F=T: tempfail when
    the milter is unavailable). Accepted mail stays in :attr:`queue`.

    It runs in a private mount namespace (``unshare -m``) with its own /etc/hosts (listing a
    dotted name, so it does not sleep 60 s on an unqualified host name), nsswitch.conf,
    resolv.conf and Cyrus SASL config (sasldb with :data:`SASL_USERS`), and a private /dev
    whose ``log`` is a :class:`SyslogReceiver` writing to :attr:`log_path` (Sendmail logs
    only to syslog).
    """

    def __init__(self, base: Path, *, milter: str, root: Path | None = None, port: int | None = None) -> None:
        self.base = base
        self.root = root or sendmail_root()
        self.port = port or free_port()
        self.milter = milter
        self.queue = SendmailQueue(base / "mqueue")
        self.log_path = base / "maillog"
        self.output_path = base / "sendmail.out"
        self._syslog = SyslogReceiver(base / "log.sock", self.log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def binary(self) -> Path:
        return self.root / "usr/libexec/sendmail/sendmail"

    def _write_config(self) -> Path:
        base = self.base
        (base / "mqueue").mkdir(parents=True, exist_ok=True)
        (base / "sasl").mkdir(exist_ok=True)
        base.chmod(0o755)
        (base / "mqueue").chmod(0o700)
        mc = _SENDMAIL_MC.format(
            cf=self.root / "usr/share/sendmail/cf",
            hostname=MTA_HOSTNAME,
            base=base,
            port=self.port,
            listen=LOOPBACK,
            milter=self.milter,
            domain=LOCAL_DOMAIN,
            connect_macros=", ".join(_SENDMAIL_CONNECT_MACROS),
            envfrom_macros=", ".join(_SENDMAIL_ENVFROM_MACROS),
        )
        (base / "sendmail.mc").write_text(mc)
        cf = base / "sendmail.cf"
        m4 = _run(["m4", str(base / "sendmail.mc")])
        if m4.returncode != 0:
            raise E2EError(f"m4 failed on sendmail.mc: {m4.stderr}")
        cf.write_text(m4.stdout)
        (base / "statistics").touch()
        (base / "service.switch").write_text("hosts files\naliases files\n")
        short = socket.gethostname().split(".")[0]
        hosts = f"127.0.0.1 localhost {MTA_HOSTNAME} {short}\n::1 localhost {MTA_HOSTNAME} {short}\n"
        (base / "hosts").write_text(hosts)
        (base / "nsswitch.conf").write_text("hosts: files\npasswd: files\ngroup: files\n")
        (base / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        sasldb = base / "sasl" / "sasldb2"
        (base / "sasl" / "Sendmail.conf").write_text(_cyrus_sasldb_conf(sasldb))
        write_sasldb(sasldb, owner="root")
        return cf

    def start(self, timeout: float = 20.0) -> None:
        """Configure, start in the foreground (``-bD``) and wait for the SMTP port."""
        if not self.binary.exists():
            raise E2EError(f"no Sendmail binary at {self.binary}: run scripts/install-test-deps.sh")
        cf = self._write_config()
        self._syslog.start()
        daemon = shlex.join([str(self.binary), "-C", str(cf), "-bD", "-q1h", "-L", "sm-e2e"])
        with self.output_path.open("ab") as output:
            self._proc = subprocess.Popen(
                ["unshare", "-m", "sh", "-c", f"{self._namespace_setup()} && exec {daemon}"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise E2EError(f"sendmail exited with {self._proc.returncode}:\n{self._diagnostics()}")
            return _tcp_listening(self.port)

        try:
            wait_until(ready, timeout, f"sendmail on port {self.port}")
        except TimeoutError:
            self.stop()
            raise E2EError(f"sendmail did not listen in {timeout:g} s:\n{self._diagnostics()}") from None

    def _namespace_setup(self) -> str:
        """Shell commands run inside the new mount namespace before Sendmail starts."""
        base = self.base
        host_dev = base / "host-dev"
        host_dev.mkdir(exist_ok=True)
        q = shlex.quote
        commands = [
            f"mount --bind {q(str(base / name))} {q(target)}"
            for name, target in (
                ("hosts", "/etc/hosts"),
                ("nsswitch.conf", "/etc/nsswitch.conf"),
                ("resolv.conf", "/etc/resolv.conf"),
                ("sasl", "/usr/lib/sasl2"),  # where Cyrus looks for Sendmail.conf
            )
        ]
        # a private /dev: the host's device nodes Sendmail uses, and our syslog socket as log
        commands.append(f"mount --rbind /dev {q(str(host_dev))}")
        commands.append("mount -t tmpfs -o mode=755 e2e-dev /dev")
        for node in ("null", "zero", "random", "urandom"):
            commands.append(f"touch /dev/{node} && mount --bind {q(str(host_dev / node))} /dev/{node}")
        commands.append(f"ln -s {q(str(self._syslog.socket_path))} /dev/log")
        return " && ".join(commands)

    def _diagnostics(self) -> str:
        return f"{_tail(self.output_path)}\n--- syslog:\n{_tail(self.log_path)}"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the daemon (it stops its children) and wait; SIGKILL if it hangs."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._proc = None
        self._syslog.stop()

    def log_text(self) -> str:
        """What Sendmail logged to syslog."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --------------------------------------------------------------------------- stacks


@dataclass
class MailStack:
    """A running milter and the MTA that uses it."""

    milter: MilterProcess
    mta: PostfixInstance | SendmailInstance

    @property
    def mailbox(self) -> Mailbox:
        """Where accepted mail lands (a Maildir for Postfix, the queue for Sendmail)."""
        return self.mta.maildir if isinstance(self.mta, PostfixInstance) else self.mta.queue

    def send(
        self,
        subject: str,
        *,
        body: str = "Hello from the end-to-end tests.\r\n",
        mail_from: str | None = None,
        rcpt_to: Sequence[str] = ("user@test.example",),
        headers: Mapping[str, str] | None = None,
        message: bytes | None = None,
        helo: str = "client.example",
        xclient: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        source_address: str | None = None,
    ) -> Submission:
        """Send a message (built from ``subject``/``body``/``headers`` unless ``message`` is given).

        The envelope sender defaults to a unique ``sender-TOKEN@client.example``, so the
        milter's decision for it can be found with :meth:`Submission.decision`; the other
        keywords say how the client presents itself (see :class:`SmtpClient`).
        """
        client = SmtpClient(helo=helo, xclient=xclient, auth=auth, source_address=source_address)
        token = unique_token()
        mail_from = mail_from or f"sender-{token}@client.example"
        message_id = f"<{token}@client.example>"
        if message is None:
            message = make_message(
                subject, body=body, sender=mail_from, to=rcpt_to[0], message_id=message_id, headers=headers
            )
        else:
            message_id = _message_id(message) or message_id
        submission = Submission(self, client, subject, mail_from, list(rcpt_to), message_id, message)
        return submission.resend()

    def stop(self) -> None:
        """Stop the MTA, then the milter (each by PID)."""
        try:
            self.mta.stop()
        finally:
            self.milter.stop()


@dataclass
class Submission:
    """One message sent through a :class:`MailStack`, with what came back."""

    stack: MailStack
    client: SmtpClient
    subject: str
    mail_from: str
    rcpt_to: list[str]
    message_id: str
    message: bytes
    transcript: SmtpTranscript = field(default_factory=SmtpTranscript)
    #: where the milter's log stood before this message was sent
    log_offset: int = 0

    def delivered(self, timeout: float = 10.0) -> email.message.Message:
        """Wait for the message (by Message-ID) in the MTA's mailbox and return it."""
        return self.stack.mailbox.wait_for(message_id=self.message_id, timeout=timeout)

    def assert_not_delivered(self, grace: float = 1.0) -> None:
        self.stack.mailbox.assert_absent(message_id=self.message_id, grace=grace)

    def decision(self, stage: str | None = None, timeout: float = 10.0) -> dict[str, str]:
        """The milter's decision log fields for this message: the first decision with its
        envelope sender (and ``stage``, if given) logged since it was sent."""
        return self.stack.milter.wait_for_decision(
            mail_from=self.mail_from, stage=stage, since=self.log_offset, timeout=timeout
        )

    def resend(self) -> Submission:
        """Send the very same message (again): same client, envelope and Message-ID."""
        offset = self.stack.milter.log_size()
        transcript = self.client.send(
            self.stack.mta.port, self.message, mail_from=self.mail_from, rcpt_to=self.rcpt_to
        )
        return dataclasses.replace(self, transcript=transcript, log_offset=offset)


class StackPool:
    """Starts milter + MTA stacks on demand under one runtime directory.

    Stacks with the same configuration are shared (started once); ``private=True`` gives a
    stack of its own to a test that breaks it (e.g. kills the milter). :meth:`close` stops
    every daemon by PID, stacks in parallel since a milter takes seconds to stop.
    """

    def __init__(self, runtime: Path, *, milter_command: Sequence[str] | None = None) -> None:
        self.runtime = runtime
        self.milter_command = milter_command
        self._shared: dict[tuple[object, ...], MailStack] = {}
        self._all: list[MailStack] = []
        self._lock = threading.Lock()
        self._counter = 0

    def _workdir(self, kind: str) -> Path:
        with self._lock:
            self._counter += 1
            path = self.runtime / f"{kind}-{self._counter}"
        path.mkdir(mode=0o755)
        return path

    def postfix(
        self,
        config: str = "",
        *,
        relay_all: bool = False,
        main_cf: Mapping[str, str] | None = None,
        transport: Transport = "unix",
        private: bool = False,
        start_milter: bool = True,
    ) -> MailStack:
        """A running private Postfix whose smtpd uses a milter with TOML ``config``.

        ``start_milter=False`` leaves the milter stopped (the stack is then private): the MTA
        meets an absent milter until the test calls ``stack.milter.start()``.
        """
        key = ("postfix", config, relay_all, tuple(sorted((main_cf or {}).items())), transport)

        def build() -> MailStack:
            base = self._workdir("postfix")
            milter = MilterProcess(base / "milter", config, transport=transport, command=self.milter_command)
            mta = PostfixInstance(
                base / "mta", milter=milter.postfix_spec, relay_all=relay_all, main_cf=main_cf
            )
            return MailStack(milter, mta)

        return self._get(key, build, private, start_milter)

    def sendmail(
        self,
        config: str = "",
        *,
        transport: Transport = "unix",
        private: bool = False,
        start_milter: bool = True,
    ) -> MailStack:
        """A running Sendmail whose INPUT_MAIL_FILTER is a milter with TOML ``config``
        (``start_milter`` as for :meth:`postfix`)."""
        root = ensure_sendmail_unpacked()

        def build() -> MailStack:
            base = self._workdir("sendmail")
            milter = MilterProcess(base / "milter", config, transport=transport, command=self.milter_command)
            mta = SendmailInstance(base / "mta", milter=milter.sendmail_spec, root=root)
            return MailStack(milter, mta)

        return self._get(("sendmail", config, transport), build, private, start_milter)

    def _get(
        self, key: tuple[object, ...], build: Callable[[], MailStack], private: bool, start_milter: bool
    ) -> MailStack:
        private = private or not start_milter
        if not private and key in self._shared:
            return self._shared[key]
        stack = build()
        self._all.append(stack)
        if start_milter:
            stack.milter.start()
        stack.mta.start()
        if not private:
            self._shared[key] = stack
        return stack

    def close(self) -> None:
        """Stop every stack this pool started, in parallel; raise the first failure afterwards."""
        stacks, self._all, self._shared = self._all, [], {}
        if not stacks:
            return
        with ThreadPoolExecutor(max_workers=len(stacks)) as pool:
            results = [pool.submit(stack.stop) for stack in stacks]
        for result in results:
            result.result()
