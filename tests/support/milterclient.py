"""An MTA-side milter client for tests (miltertest underneath), honouring no-reply steps."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from typing import Any

from miltertest import MilterConnection
from miltertest import constants as C

_NO_REPLY = {
    C.SMFIC_CONNECT: C.SMFIP_NR_CONN,
    C.SMFIC_HELO: C.SMFIP_NR_HELO,
    C.SMFIC_MAIL: C.SMFIP_NR_MAIL,
    C.SMFIC_RCPT: C.SMFIP_NR_RCPT,
    C.SMFIC_HEADER: C.SMFIP_NR_HDR,
    C.SMFIC_EOH: C.SMFIP_NR_EOH,
    C.SMFIC_BODY: C.SMFIP_NR_BODY,
    C.SMFIC_DATA: C.SMFIP_NR_DATA,
}
SETSYMLIST = 0x100  # miltertest cannot decode macro lists in the option reply: do not offer it


def connect_socket(path: str, timeout: float = 10.0) -> socket.socket:
    """Connect to a unix milter socket, waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            s.settimeout(timeout)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class MilterClient:
    """Plays the MTA in one milter conversation."""

    def __init__(self, path: str) -> None:
        self.sock = connect_socket(path)
        self.conn = MilterConnection(self.sock)
        self.conn.optneg_mta(actions=C.SMFI_V6_ACTS & ~SETSYMLIST)

    def _step(self, cmd: str, **kw: Any) -> Any:
        if self.conn.protocol_flags & _NO_REPLY.get(cmd, 0):
            self.conn._send(cmd, **kw)
            return None
        return self.conn.send_get(cmd, **kw)

    def start(self, client_ip: str = "203.0.113.7", helo: str = "mail.client.example", **macros: str) -> None:
        self.conn.send_macro(
            C.SMFIC_CONNECT, **{"j": "mx.test.example", "{client_addr}": client_ip, **macros}
        )
        self._step(C.SMFIC_CONNECT, hostname=helo, family=C.SMFIA_INET, port=40000, address=client_ip)
        self._step(C.SMFIC_HELO, helo=helo)

    def envelope(self, sender: str, recipients: Sequence[str], auth: str | None = None) -> list[Any]:
        macros = {"i": "TESTQUEUE"}
        if auth:
            macros.update({"{auth_authen}": auth, "{auth_type}": "PLAIN"})
        self.conn.send_macro(C.SMFIC_MAIL, **macros)
        replies = [self._step(C.SMFIC_MAIL, args=[f"<{sender}>"])]
        for rcpt in recipients:
            replies.append(self._step(C.SMFIC_RCPT, args=[f"<{rcpt}>"]))
        return replies

    def message(self, headers: Sequence[tuple[str, str]], body: str) -> list[tuple[str, dict[str, Any]]]:
        """Send DATA (unless negotiated away), headers and body, then end of message; returns
        the milter's replies."""
        if not self.conn.protocol_flags & C.SMFIP_NODATA:
            self._step(C.SMFIC_DATA)
        for name, value in headers:
            self._step(C.SMFIC_HEADER, name=name, value=" " + value)
        self._step(C.SMFIC_EOH)
        self._step(C.SMFIC_BODY, buf=body)
        return self.conn.send_eom()  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            self.conn._send(C.SMFIC_QUIT)
        finally:
            self.sock.close()


def final_action(replies: list[tuple[str, dict[str, Any]]]) -> str:
    """'accept', 'reject', 'tempfail', 'discard' or 'continue' from end-of-message replies."""
    code = replies[-1][0]
    if code == C.SMFIR_REPLYCODE:
        return "reject" if replies[-1][1]["smtpcode"].startswith("5") else "tempfail"
    return {
        C.SMFIR_ACCEPT: "accept",
        C.SMFIR_REJECT: "reject",
        C.SMFIR_TEMPFAIL: "tempfail",
        C.SMFIR_DISCARD: "discard",
        C.SMFIR_CONTINUE: "continue",
    }.get(code, code)


def added_headers(replies: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    return {
        r[1]["name"]: r[1]["value"].strip() for r in replies if r[0] in (C.SMFIR_ADDHEADER, C.SMFIR_INSHEADER)
    }


def one_message(
    path: str, body: str, subject: str = "test", **envelope: Any
) -> list[tuple[str, dict[str, Any]]]:
    """A whole conversation for one message; returns the end-of-message replies."""
    client = MilterClient(path)
    try:
        client.start()
        client.envelope(
            envelope.get("sender", "a@client.example"),
            envelope.get("recipients", ["u@test.example"]),
            envelope.get("auth"),
        )
        return client.message([("From", "a@client.example"), ("Subject", subject)], body)
    finally:
        client.close()
