"""DKIM conformance: dkimpy's own test vectors (from its sdist) and the RFC 8463 example
(RFC 6376's Appendix A message signed with Ed25519 and RSA), verified by the dkim filter
with every key served by a real DNS server on loopback. Tampered copies must fail."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from milterfilters.api import evaluate
from tests.support.dnsserver import DnsTestServer, Zone
from tests.support.mailauth import auth_chain, authentication_results
from tests.support.sdist import unpacked_sdist

#: RFC 8463 Appendix A.2: the Ed25519 key of the example (RFC 8032 7.1 test key)
RFC8463_ED25519 = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#: the key of dkimpy's gmail.com sample (from its test_dkim.py)
GMAIL_20120113 = (
    "k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1Kd87/UeJjenpabgbFwh+eBCsSTrqmwIYYvywlbhbqoo2Dym"
    "ndFkbjOVIPIldNs/m40KF+yzMn1skyoxcTUGCQs8g3FgD2Ap3ZB5DekAo5wMmk4wimDO+U8QzI3SD07y2+07wlNWwIt8svnxgdxG"
    "kVbbhzY8i+RQ9DpSVpPbF7ykQxtKXkv/ahW3KjViiAH+ghvvIhkx4xYSIc9oSwVmAl5OctMEeWUwg8Istjqz8BZeTWbf41fbNhte"
    "7Y+YqZOwq1Sd0DbvYAD9NOZK9vlfuac0598HY+vtSBczUiKERHv1yRbcaQtZFh5wtiRrN04BLUTD21MycBX5jYchHjPY/wIDAQAB"
)


@pytest.fixture(scope="module")
def vectors() -> Path:
    return unpacked_sdist("dkimpy", version("dkimpy")) / "dkim" / "tests" / "data"


@pytest.fixture
def dns(dns_server: DnsTestServer, vectors: Path) -> DnsTestServer:
    rfc8463_rsa = (vectors / "test.txt").read_text().strip()
    dns_server.zone = Zone(
        {
            "brisbane._domainkey.football.example.com": [("TXT", RFC8463_ED25519)],
            "test._domainkey.football.example.com": [("TXT", rfc8463_rsa)],
            "sed._domainkey.test.ex": [("TXT", (vectors / "eximtest.dns").read_text().strip())],
            "20120113._domainkey.gmail.com": [("TXT", GMAIL_20120113)],
            "test._domainkey.example.com": [("TXT", rfc8463_rsa)],
        }
    )
    return dns_server


def dkim_results(dns: DnsTestServer, message: bytes) -> tuple[list[str], str]:
    """The DKIM symbols (with details) and the Authentication-Results the chain gives ``message``."""
    chain = auth_chain(dns, {"dkim": {"arc": False}})
    outcome = evaluate(
        chain,
        message,
        client_ip="192.0.2.25",
        mail_from="sender@example.net",
        recipients=["user@test.example"],
    )
    found = [f"{f.finding.symbol} {f.finding.detail}" for f in outcome.decision.findings]
    return [f for f in found if f.startswith("DKIM_")], authentication_results(outcome.decision.headers)


# (file in dkimpy's test data, expected outcome per signature, top first)
GOOD = [
    ("rfc6376.signed.msg", ["DKIM_PASS d=football.example.com s=brisbane a=ed25519-sha256",
                            "DKIM_PASS d=football.example.com s=test a=rsa-sha256"]),
    ("rfc6376.signed.rsa.msg", ["DKIM_PASS d=football.example.com s=test a=rsa-sha256"]),
    ("ed25519test2.msg", ["DKIM_PASS d=test.ex s=sed a=ed25519-sha256"]),
    ("test2.message", ["DKIM_PASS d=gmail.com s=20120113 a=rsa-sha256"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_published_signatures_verify(
    dns: DnsTestServer, vectors: Path, name: str, expected: list[str]
) -> None:
    symbols, header = dkim_results(dns, (vectors / name).read_bytes())
    assert symbols == expected
    assert header.count("dkim=pass") == len(expected)
    assert "header.d=" in header and "header.s=" in header and "header.b=" in header
    # every key came from the loopback server, over the wire
    assert dns.count(qtype="TXT") >= len({e.split()[2] for e in expected})


def _tamper_body(message: bytes) -> bytes:
    head, _, body = message.replace(b"\r\n", b"\n").partition(b"\n\n")
    return head + b"\n\n" + body.replace(b"e", b"E", 1)


def _tamper_from(message: bytes) -> bytes:
    out, count = re.subn(rb"(?im)^(from:[ \t]*)", rb"\1Boss ", message, count=1)
    assert count == 1
    return out


@pytest.mark.parametrize("tamper", [_tamper_body, _tamper_from], ids=["body", "from"])
@pytest.mark.parametrize(("name", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_tampered_copies_fail(
    dns: DnsTestServer, vectors: Path, name: str, expected: list[str], tamper
) -> None:  # type: ignore[no-untyped-def]
    symbols, header = dkim_results(dns, tamper((vectors / name).read_bytes()))
    assert [s.split(":")[0] for s in symbols] == [e.replace("DKIM_PASS", "DKIM_FAIL") for e in expected]
    assert "dkim=pass" not in header and header.count("dkim=fail") == len(expected)


def test_an_added_from_field_fails_the_signature(dns: DnsTestServer, vectors: Path) -> None:
    message = (vectors / "rfc6376.signed.rsa.msg").read_bytes().replace(b"\r\n", b"\n")
    forged = message.replace(b"\nFrom: ", b"\nFrom: Evil <boss@evil.example>\nFrom: ", 1)
    symbols, _ = dkim_results(dns, forged)
    assert symbols[0].startswith("DKIM_FAIL d=football.example.com s=test")


def test_sign_and_verify_with_dkimpy_test_keys(dns: DnsTestServer, vectors: Path) -> None:
    import dkim

    message = (vectors / "test.message").read_bytes()
    for canon in ((b"simple", b"simple"), (b"relaxed", b"simple"), (b"relaxed", b"relaxed")):
        signature = dkim.sign(message, b"test", b"example.com", (vectors / "test.private").read_bytes(),
                              canonicalize=canon)  # fmt: skip
        symbols, _ = dkim_results(dns, signature + message)
        assert symbols == ["DKIM_PASS d=example.com s=test a=rsa-sha256"], canon


def test_invalid_signing_domain_is_a_permanent_error(dns: DnsTestServer, vectors: Path) -> None:
    symbols, header = dkim_results(dns, (vectors / "test.message.baddomain").read_bytes())
    assert len(symbols) == 1 and symbols[0].startswith("DKIM_PERMERROR")
    assert "dkim=permerror" in header


def test_unsigned_message_is_dkim_none(dns: DnsTestServer) -> None:
    symbols, header = dkim_results(dns, b"From: a@example.com\nSubject: x\n\nhello\n")
    assert symbols == ["DKIM_NONE message is not signed"]
    assert "dkim=none" in header
    assert dns.count() == 0  # an unsigned message costs no DNS


def test_dkimpy_arc_vector_validates_and_fails_when_tampered(dns: DnsTestServer, vectors: Path) -> None:
    import dkim

    # dkimpy's test_arc: test.message sealed by example.com with test.private at t=12345
    message = (vectors / "test.message").read_bytes()
    seal = dkim.arc_sign(message, b"test", b"example.com", (vectors / "test.private").read_bytes(),
                         b"lists.example.org", timestamp="12345")  # fmt: skip
    assert seal[0].startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.com; s=test; t=12345;")
    sealed = b"".join(seal) + message
    chain = auth_chain(dns, {"dkim": {}})
    tampered = sealed.replace(b"a test message", b"an altered message")
    assert tampered != sealed
    for body, expected in ((sealed, "arc=pass"), (tampered, "arc=fail")):
        outcome = evaluate(
            chain, body, client_ip="192.0.2.25", mail_from="a@example.net", recipients=["u@test.example"]
        )
        assert expected in authentication_results(outcome.decision.headers)
