"""Test messages and an SMTP client that reports the reply of every stage."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import smtplib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .runtime import LOOPBACK, unique_token

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


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


def message_id_of(message: bytes) -> str | None:
    """The Message-ID header of a raw message, or None."""
    value = email.message_from_bytes(message, policy=email.policy.compat32).get("Message-ID")
    return str(value).strip() if value else None


@dataclass(frozen=True)
class Reply:
    """One SMTP reply."""

    code: int
    text: str

    @property
    def positive(self) -> bool:
        """2xx or 3xx."""
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        """4xx: try again later (the client keeps the message)."""
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        """5xx: refused."""
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
        if self.rcpt:  # DATA is sent unless every recipient was refused
            return list(self.rcpt.values())[-1]
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
        """One line with every reply, for assertion messages."""
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


def dot_stuffed(message: bytes, eol: bytes = b"\r\n") -> bytes:
    """``message`` with ``eol`` line ends (CRLF, or a bare LF to test what servers make of it),
    leading dots doubled and the terminating ``.`` line (always CRLF)."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + eol for line in lines) + b".\r\n"


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
    #: send the message with bare LF line ends (a broken client; servers differ on what they make of it)
    bare_lf: bool = False

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
        client.send(dot_stuffed(message, b"\n" if c.bare_lf else b"\r\n"))
        t.eom = Reply(*_decoded(client.getreply()))
    except smtplib.SMTPServerDisconnected:
        _record_disconnect(t, c, rcpt_to)
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
    return t


def _decoded(reply: tuple[int, bytes]) -> tuple[int, str]:
    code, text = reply
    return code, text.decode("utf-8", "replace").replace("\n", " ")


def _record_disconnect(t: SmtpTranscript, c: SmtpClient, rcpt_to: Sequence[str]) -> None:
    """Mark the stage whose reply never came as :data:`DISCONNECTED`."""
    stages = ["banner", "ehlo"] + ["xclient"] * bool(c.xclient) + ["auth"] * bool(c.auth) + ["mail"]
    for name in stages:
        if getattr(t, name) is None:
            setattr(t, name, DISCONNECTED)
            return
    for rcpt in rcpt_to:
        if rcpt not in t.rcpt:
            t.rcpt[rcpt] = DISCONNECTED
            return
    if t.data is None:
        t.data = DISCONNECTED
    elif t.eom is None:
        t.eom = DISCONNECTED
