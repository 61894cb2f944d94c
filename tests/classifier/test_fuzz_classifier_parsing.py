"""Fuzzing the MIME walk and the feature extraction: any bytes, and MIME messages built to be
awkward (deep nesting, wrong encodings and charsets, broken boundaries, HTML), give a result
within the budgets and never an exception. ``scripts/fuzz.sh SECONDS`` runs these at length."""

from __future__ import annotations

import base64
import quopri
import time

from hypothesis import given
from hypothesis import strategies as st

from milterfilters.classifier.features import extract_features
from milterfilters.classifier.parsing import MAX_PART_CHARS, MAX_PARTS, parse_mail
from tests.support.fuzz import fuzz_settings

#: seconds one message may cost at most (the walk's budget is 0.25 s; parsing 256 KB and
#: extracting features come on top, on a busy shared machine)
WALL_CLOCK_BOUND = 5.0

_CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "koi8-r", "utf-16", "x-unknown", "", "utf-8\x00", "gb2312"]
_ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus"]
_TYPES = [
    "text/plain",
    "text/html",
    "application/octet-stream",
    "image/png",
    "message/rfc822",
    "text/x-weird",
]


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from(_TYPES))
    charset = draw(st.sampled_from(_CHARSETS))
    encoding = draw(st.sampled_from(_ENCODINGS))
    payload = draw(
        st.one_of(
            st.binary(max_size=300), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
        )
    )
    if ctype == "text/html":
        payload = b"<html><body><a href='http://" + payload[:40] + b"'>x</a>" + payload + b"</body>"
    if encoding == "base64" and draw(st.booleans()):
        payload = base64.encodebytes(payload)
    elif encoding == "quoted-printable" and draw(st.booleans()):
        payload = quopri.encodestring(payload)
    head = f'Content-Type: {ctype}; charset="{charset}"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
    return head.encode("utf-8", "surrogatepass") + payload + b"\r\n"


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        boundary = draw(st.sampled_from(["b", "==x==", "a" * 70, "", "same"]))
        parts = draw(st.lists(children, min_size=0, max_size=4))
        closing = draw(st.booleans())
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + p for p in parts)
        if closing:
            body += b"--" + boundary.encode() + b"--\r\n"
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest"]))
        return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode() + body

    return build()


mime_tree = st.recursive(leaf(), multipart, max_leaves=12)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["From", "To", "Subject", "Reply-To", "Received", "X-Mailer", "Date", "Message-ID"]
                ),
                st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
            ),
            max_size=6,
        )
    )
    head = b"".join(
        name.encode() + b": " + value.replace(b"\n", b" ").replace(b"\r", b" ") + b"\r\n"
        for name, value in headers
    )
    return head + b"MIME-Version: 1.0\r\n" + draw(mime_tree)


def _check(raw: bytes) -> None:
    started = time.perf_counter()
    mail = parse_mail(raw)
    features = extract_features(mail)
    elapsed = time.perf_counter() - started
    assert elapsed < WALL_CLOCK_BOUND
    assert len(mail.structure) <= MAX_PARTS
    assert all(len(p.text) <= MAX_PART_CHARS for p in mail.parts)
    assert all(isinstance(w, str) for w in features.words)
    assert all(isinstance(t, str) for t in features.traits)


@fuzz_settings(200)
@given(st.binary(max_size=4000))
def test_any_bytes_give_features_within_budget(raw: bytes) -> None:
    _check(raw)


@fuzz_settings(150)
@given(messages())
def test_awkward_mime_gives_features_within_budget(raw: bytes) -> None:
    _check(raw)


@fuzz_settings(20)
@given(st.integers(1, 400), st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_deep_nesting_and_odd_line_ends_stay_within_budget(depth: int, eol: bytes) -> None:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"' % i + eol + eol + b"--b%d" % i + eol
        for i in range(depth)
    )
    _check(b"Subject: deep" + eol + head + b"Content-Type: text/plain" + eol + eol + b"leaf" + eol)
