"""Bounded, never-raising parsing and feature extraction on hand-made hostile messages."""

from __future__ import annotations

import base64
import time

import pytest

from milterfilters.classifier.features import decode_header_text, extract_features, registered_domain
from milterfilters.classifier.parsing import MAX_PARTS, parse_mail


def features_of(raw: bytes):
    return extract_features(parse_mail(raw))


def test_bogus_charset_does_not_raise_and_is_flagged() -> None:
    raw = (
        b"Subject: =?default_charset?Q?caf=E9?=\n"
        b"Content-Type: text/plain; charset=default_charset\n\n"
        b"caf\xe9 au lait\n"
    )
    f = features_of(raw)
    assert "@charset_unknown" in f.traits
    assert "au" in f.words and "lait" in f.words
    assert any(w.startswith("s:caf") for w in f.words)


def test_quoted_printable_and_base64_are_decoded() -> None:
    qp = (
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        b"soci=C3=A9t=C3=A9 g=\nrande\n"
    )
    assert "société" in features_of(qp).words and "grande" in features_of(qp).words
    b64 = base64.encodebytes("Grüße aus Köln".encode("iso-8859-1"))
    raw = b"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\n" + b64
    f = features_of(raw)
    assert {"grüße", "köln"} <= set(f.words)
    assert "@cte:text/plain:base64" in f.traits


def test_broken_base64_and_truncated_multipart_do_not_raise() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="XX"\n\n--XX\n'
        b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n@@@not base64!!\n--XX\n"
        b"Content-Type: text/html\n\n<p>unterminated <b"
    )
    mail = parse_mail(raw)
    assert [p.content_type for p in mail.parts] == ["text/plain", "text/html"]
    extract_features(mail)  # must not raise


def test_html_is_converted_to_text_and_tricks_become_traits() -> None:
    raw = (
        b"Content-Type: text/html; charset=utf-8\n\n"
        b"<html><head><style>p{color:red}</style></head><body>"
        b"<p>Hello&nbsp;world</p><script>var hidden_js = 1;</script>"
        b'<div style="display:none">invisible filler words</div>'
        b'<a href="http://203.0.113.9/x">http://bank.example.com/login</a>'
        b'<img src="a.gif"></body></html>'
    )
    f = features_of(raw)
    assert "hello" in f.words and "world" in f.words
    assert "hidden_js" not in f.words and "color" not in f.words
    assert {"@html_only", "@html_hidden_text", "@url_ip", "@url_anchor_mismatch", "@html_tag:img"} <= set(
        f.traits
    )


def test_urls_and_domains() -> None:
    raw = b"Subject: x\n\nSee https://www.shop.example.co.uk/a and http://user@198.51.100.7:8080/p today\n"
    traits = set(features_of(raw).traits)
    assert {"@url_domain:example.co.uk", "@url_ip", "@url_userinfo", "@url_port", "@url_https"} <= traits
    assert registered_domain("a.b.example.com") == "example.com"


def test_label_leaking_headers_are_ignored() -> None:
    base = b"From: a@example.org\nSubject: hello\n\nsame body\n"
    leaky = b"X-Spam-Status: Yes, score=25.0\nX-Spam-Flag: YES\nX-Mailman-Approved-At: now\n" + base
    assert features_of(leaky) == features_of(base)


def test_8bit_header_bytes_and_encoded_words() -> None:
    raw = b"From: \xc9milie <e@example.fr>\nSubject: =?utf-8?B?w6l0w6kgIQ==?=\n\nbody\n"
    f = features_of(raw)
    assert "s:été" in f.words and "@subject_encoded" in f.traits and "@subject_bang" in f.traits
    assert decode_header_text("=?bogus-cs?Q?x?=") == "x"


def test_huge_message_reads_only_a_prefix() -> None:
    raw = b"Subject: big\n\n" + b"word " * 2_000_000
    started = time.perf_counter()
    mail = parse_mail(raw, max_bytes=64 * 1024)
    f = extract_features(mail)
    assert time.perf_counter() - started < 2.0
    assert mail.truncated and "@huge" in f.traits
    assert mail.raw_size == len(raw)


def test_part_bomb_is_bounded() -> None:
    parts = b"".join(b"--B\nContent-Type: text/plain\n\npart\n" for _ in range(5000))
    raw = b'Content-Type: multipart/mixed; boundary="B"\n\n' + parts + b"--B--\n"
    mail = parse_mail(raw, max_bytes=len(raw))
    assert mail.over_budget and len(mail.structure) == MAX_PARTS


def test_time_budget_stops_the_walk() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain\n\nx\n--B--\n'
    mail = parse_mail(raw, time_budget=1e-9)
    assert mail.over_budget and not mail.parts


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n\n",
        b"From \n",
        b"garbage without headers",
        b"Content-Type: multipart/mixed\n\nno boundary",
        b"\xff" * 100,
    ],
)
def test_degenerate_inputs_never_raise(raw: bytes) -> None:
    extract_features(parse_mail(raw))


PATHOLOGICAL = {
    "unclosed anchors": b"Content-Type: text/html\n\n" + b'<a href="http://y.example/">' * 5000,
    "unclosed font tags": b"Content-Type: text/html\n\n" + b"<font color=" * 20000,
    "unclosed comments": b"Content-Type: text/html\n\n" + b"a<!--" * 20000,
    "lone brackets": b"Content-Type: text/html\n\n" + b"<" * 200000,
    "endless host": b"Subject: x\n\nhttp://" + b"a." * 100000,
    "digit-letter soup": b"Subject: x\n\n" + b"a0" * 100000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_content_stays_cheap(name: str) -> None:
    # unbounded regular expressions took 3-5 s on the font and comment cases
    started = time.perf_counter()
    extract_features(parse_mail(PATHOLOGICAL[name]))
    assert (
        time.perf_counter() - started < 1.5
    )  # generous: the machine may be busy; unbounded, these took 3-5 s


def test_years_fold_into_one_token() -> None:
    words = features_of(b"Subject: Offer 2002\n\nIn 1999 and 2024, not 2100 or 12345.\n").words
    assert words.count("#year") == 2 and "s:#year" in words
    assert {"2100", "12345"} <= set(words) and "2024" not in words


@pytest.mark.parametrize(
    ("body", "caps", "nonascii"),
    [
        ("HELLO WORLD, BUY NOW", 3, 0),  # every letter upper case, plain ASCII
        ("Grüße aus Köln, très bien", 1, 2),  # 2 of 19 letters upper; 4 of 25 characters non-ASCII
        ("αβγδ εζηθ \u0394\u03a3", 2, 3),  # Greek letters are letters, and all but the spaces non-ASCII
    ],
)
def test_case_and_non_ascii_share_of_the_text(body: str, caps: int, nonascii: int) -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\n\n" + body.encode()
    traits = features_of(raw).traits
    assert f"@caps:{caps}" in traits and f"@nonascii:{nonascii}" in traits
