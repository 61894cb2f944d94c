"""``parse_message`` makes the body's line ends CRLF on the whole block at once; property: it
gives exactly the bytes the line-by-line reading it replaced gave, whatever mix of LF, CRLF and
stray CRs the message has."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from milterfilters.mail.message import parse_message


def line_by_line_body(raw: bytes) -> bytes:
    """The body as ``parse_message`` read it before (one Python step per line)."""
    lines = raw.split(b"\n")
    body_lines = lines[lines.index(b"") + 1 :] if b"" in lines else []
    if body_lines and body_lines[-1] in (b"", b"\r"):
        return b"".join(line.removesuffix(b"\r") + b"\r\n" for line in body_lines[:-1])
    return b"\r\n".join(line.removesuffix(b"\r") for line in body_lines)


BODY = st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b" ", b"\xff"]), max_size=30).map(b"".join)


@given(BODY)
def test_body_line_ends_as_read_line_by_line(body: bytes) -> None:
    raw = b"Subject: x\n\n" + body
    assert parse_message(raw).body == line_by_line_body(raw)


def test_examples() -> None:
    assert parse_message(b"Subject: x\n\na\nb").body == b"a\r\nb"
    assert parse_message(b"Subject: x\r\n\r\na\r\nb\r\n").body == b"a\r\nb\r\n"
    assert parse_message(b"Subject: x\n\n\n").body == b"\r\n"
    assert parse_message(b"Subject: x\n\na\n\r").body == b"a\r\n"
