"""Turn raw message bytes (a file, stdin, an mbox entry) into a :class:`Message`, and header
fields as an MTA hands them to the milter into :class:`HeaderField` values.

One header-field reader for both ways in (:func:`header_field`), so that ``check`` and the
milter see the same fields: the name loses the white space that obsolete syntax allows before
the colon (RFC 5322 §4.5.8: ``From : x`` is a From field, and mail clients show it as one),
and line breaks inside a folded value become CRLF whichever the MTA used.

Tolerant by design: an mbox ``From `` line is skipped, LF or CRLF line ends are accepted,
8-bit bytes are kept (as surrogate escapes in names and values), a line that is not a header
field ends the header block, as Postfix's cleanup does. Never raises on content.
"""

from __future__ import annotations

import re

from milterfilters.core.context import HeaderField, Message

_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.DOTALL)
_LINE_BREAK = re.compile(r"\r?\n")


def header_field(name: str, value: str) -> HeaderField:
    """The header field called ``name`` with ``value`` (everything after the colon).

    Both are text whose non-UTF-8 bytes are surrogate escapes (pymilter's and
    :func:`parse_message`'s decoding), so the original bytes stay recoverable. White space
    before the colon is dropped from the name; bare LF or CRLF inside the value becomes CRLF.
    """
    return HeaderField(name.rstrip(" \t"), _LINE_BREAK.sub("\r\n", value))


def _crlf_body(body: bytes) -> bytes:
    """The body with every line ending CRLF (bare LF or CRLF before); a CR at the very end is
    dropped and a final unterminated line stays unterminated. Works on the whole block in C."""
    if body.endswith(b"\r"):
        body = body[:-1]
    return body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def parse_message(raw: bytes, *, max_body_bytes: int | None = None) -> Message:
    """Split ``raw`` into header fields and a CRLF body; keep at most ``max_body_bytes``."""
    if raw.startswith(b"From ") and not _FIELD.match(raw.split(b"\n", 1)[0].removesuffix(b"\r")):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""  # an mbox separator, not ``From :``
    lines = raw.split(b"\n")
    headers: list[tuple[bytes, bytes]] = []
    i = 0
    body_start = len(lines)
    while i < len(lines):
        line = lines[i].removesuffix(b"\r")
        if line == b"":
            body_start = i + 1
            break
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b"\r\n" + line)
            i += 1
            continue
        m = _FIELD.match(line)
        if not m:
            body_start = i  # not a header: the body starts here
            break
        headers.append((m.group(1), m.group(2)))
        i += 1
    body = _crlf_body(b"\n".join(lines[body_start:]))
    size = len(body)
    truncated = max_body_bytes is not None and size > max_body_bytes
    if truncated:
        body = body[:max_body_bytes]
    fields = tuple(
        header_field(name.decode("ascii", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in headers
    )
    return Message(headers=fields, body=body, size=size, body_truncated=truncated)
