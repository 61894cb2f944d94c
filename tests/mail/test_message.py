from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters.mail.message import parse_message


def test_headers_folding_and_crlf_body() -> None:
    m = parse_message(
        b"From x@y Sat Jan  1 00:00:00 2002\nSubject: a\n\tb\nTo: t@example.org\n\nline1\nline2\n"
    )
    assert [h.name for h in m.headers] == ["Subject", "To"]
    assert m.get("subject") == "a\tb"
    assert m.body == b"line1\r\nline2\r\n"
    assert m.raw().startswith(b"Subject: a\r\n\tb\r\nTo: t@example.org\r\n\r\n")


def test_eight_bit_headers_survive_byte_exact() -> None:
    raw = b"Subject: caf\xe9 \xff\r\n\r\nbody\r\n"
    m = parse_message(raw)
    assert m.raw() == raw


def test_non_header_line_starts_the_body_and_missing_separator_is_fine() -> None:
    m = parse_message(b"Subject: x\nthis is not a header\nmore\n")
    assert m.get("Subject") == "x"
    assert m.body.startswith(b"this is not a header")
    assert parse_message(b"Subject: only headers").get("subject") == "only headers"
    assert parse_message(b"").headers == ()


def test_body_cap_counts_every_byte() -> None:
    m = parse_message(b"Subject: big\n\n" + b"x" * 1000 + b"\n", max_body_bytes=100)
    assert len(m.body) == 100 and m.body_truncated and m.size == 1002


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_error(raw: bytes) -> None:
    m = parse_message(raw, max_body_bytes=500)
    assert len(m.body) <= 500
    m.raw()
