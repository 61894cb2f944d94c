"""Hostile messages, generated (no corpus message is ever committed): each has a shape that has
stranded or confused mail software — a header field longer than libmilter's 64 KB packet, a
quoted local part holding ``@``, 8-bit garbage in header fields, MIME nested deeply, a NUL
byte, bare LF line ends. Used by the end-to-end tests and the fault soak: every one must be
delivered or refused with a reason, never lost and never tempfailed for ever.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

#: the size of the ``From:`` field of a real 2023 phishing mail that dropped the milter connection
BIG_FIELD_BYTES = 126 * 1024


@dataclass(frozen=True)
class Hostile:
    """One hostile message: its envelope sender, its bytes (CRLF line ends) and whether the
    client should send it with bare LF line ends."""

    kind: str
    mail_from: str
    message: bytes
    bare_lf: bool = False


def big_from_value(size: int = BIG_FIELD_BYTES, address: str = "security@account-alerts.example") -> str:
    """A ``From`` value of about ``size`` bytes: a display name of RFC 2047 encoded words, one
    per folded line (as the phishing mail did, to push the address out of sight). Encoded words
    are single tokens, so Postfix's ``header_address_token_limit`` does not shorten the field."""
    filler = "Account Security Notice: verify your mailbox now. "
    word = "=?UTF-8?B?" + base64.b64encode(filler.encode()).decode() + "?="
    count = size // (len(word) + 3) + 1
    return "\r\n ".join([word] * count) + f" <{address}>"


def _head(fields: list[tuple[str, str]], message_id: str) -> bytes:
    base = [("To", "user@test.example"), ("Date", "Tue, 02 Jul 2024 10:00:00 +0000")]
    base.append(("Message-ID", message_id))
    return "".join(f"{name}: {value}\r\n" for name, value in fields + base).encode()


def big_header(message_id: str, sender: str) -> Hostile:
    head = _head([("From", big_from_value()), ("Subject", "Your mailbox is almost full")], message_id)
    return Hostile("big-header", sender, head + b"\r\nPlease verify your account.\r\n")


def quoted_at_local_part(message_id: str, sender: str) -> Hostile:
    local, _, domain = sender.rpartition("@")
    quoted = f'"{local}@paypal.example"@{domain}'
    head = _head([("From", quoted), ("Subject", "quoted local part")], message_id)
    return Hostile("quoted-at", quoted, head + b"\r\nA quoted local part holding an at sign.\r\n")


def eight_bit_garbage(message_id: str, sender: str) -> Hostile:
    head = _head([("From", sender), ("Subject", "8-bit")], message_id)
    garbage = b"Subject-Extra: \xff\xfe\xc3\x28\xa0\xe9t\xe9\r\nX-Garbage: \x80\x81\x82 \xf0\x28\x8c\xbc\r\n"
    return Hostile("8bit-headers", sender, garbage + head + b"\r\nbody \xe9\xff\r\n")


def nested_mime(message_id: str, sender: str, depth: int = 60) -> Hostile:
    head = _head([("From", sender), ("Subject", "nested"), ("MIME-Version", "1.0")], message_id)
    head += b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    parts = []
    for level in range(1, depth):
        parts.append(f'--b{level - 1}\r\nContent-Type: multipart/mixed; boundary="b{level}"\r\n\r\n')
    parts.append(f"--b{depth - 1}\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n")
    parts.extend(f"--b{level}--\r\n" for level in range(depth - 1, -1, -1))
    return Hostile("nested-mime", sender, head + "".join(parts).encode())


def nul_byte(message_id: str, sender: str) -> Hostile:
    head = _head([("From", sender), ("Subject", "nul")], message_id)
    return Hostile("nul-byte", sender, head + b"\r\nbefore\x00after\r\n")


def bare_lf(message_id: str, sender: str) -> Hostile:
    head = _head([("From", sender), ("Subject", "bare LF")], message_id)
    return Hostile("bare-lf", sender, head + b"\r\nline one\r\nline two\r\n", bare_lf=True)


#: every kind, in the order the soak cycles through them
KINDS: dict[str, Callable[[str, str], Hostile]] = {
    "big-header": big_header,
    "quoted-at": quoted_at_local_part,
    "8bit-headers": eight_bit_garbage,
    "nested-mime": nested_mime,
    "nul-byte": nul_byte,
    "bare-lf": bare_lf,
}


def hostile_message(kind: str, message_id: str, sender: str) -> Hostile:
    """The hostile message ``kind`` (a key of :data:`KINDS`) with this Message-ID and sender."""
    return KINDS[kind](message_id, sender)
