"""What each DKIM signature's outcome means: pass, fail, temperror, permerror, with the RFC
rules dkimpy leaves to us (RFC 8301 algorithms and key sizes, t=/x=, l=, From signed, key
type). Keys are made here and served by the loopback DNS server."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.canonicalization import CanonicalizationPolicy
from dkim.crypto import parse_pem_private_key

from milterfilters.api import evaluate
from milterfilters.auth.dkim_keys import PrivateKey, generate_key
from tests.support.dnsserver import DnsTestServer, Fault, Zone
from tests.support.mailauth import auth_chain, authentication_results

MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@test.example\r\nSubject: lunch\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nSee you at noon.\r\n"
)


@pytest.fixture(scope="module")
def rsa2048() -> PrivateKey:
    return generate_key("rsa", 2048)[1]


@pytest.fixture(scope="module")
def rsa1024() -> PrivateKey:
    return generate_key("rsa", 1024)[1]


@pytest.fixture(scope="module")
def ed() -> PrivateKey:
    return generate_key("ed25519")[1]


@pytest.fixture
def dns(dns_server: DnsTestServer, rsa2048: PrivateKey, rsa1024: PrivateKey, ed: PrivateKey) -> DnsTestServer:
    dns_server.zone = Zone(
        {
            "rsa._domainkey.example.com": [("TXT", rsa2048.public_record)],
            "small._domainkey.example.com": [("TXT", rsa1024.public_record)],
            "ed._domainkey.example.com": [("TXT", ed.public_record)],
            "wrongtype._domainkey.example.com": [("TXT", ed.public_record)],
            "revoked._domainkey.example.com": [("TXT", "v=DKIM1; k=rsa; p=")],
            "broken._domainkey.example.com": [("TXT", rsa2048.public_record)],
            "slow._domainkey.example.com": [("TXT", huge_exponent_record(rsa2048))],
        }
    )
    return dns_server


def huge_exponent_record(key: PrivateKey) -> str:
    """``key``'s modulus with a 2000-bit exponent: verifying costs as much as signing."""
    n = serialization.load_pem_private_key(key.dkimpy_key, None).public_key().public_numbers().n  # type: ignore[union-attr]
    public = rsa.RSAPublicNumbers((1 << 1999) | 1, n).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def sign(message: bytes, selector: str, key: PrivateKey, **kw: object) -> bytes:
    algorithm = b"ed25519-sha256" if key.key_type == "ed25519" else b"rsa-sha256"
    kw.setdefault("signature_algorithm", algorithm)
    kw.setdefault("canonicalize", (b"relaxed", b"relaxed"))
    return dkim.sign(message, selector.encode(), b"example.com", key.dkimpy_key, **kw) + message  # type: ignore[arg-type]


def sign_with_tags(message: bytes, selector: str, key: PrivateKey, tags: list[tuple[bytes, bytes]],
                   signed: tuple[bytes, ...] = (b"from", b"subject")) -> bytes:  # fmt: skip
    """An rsa-sha256 signature with extra tags (t=, x=) that dkimpy's sign() cannot write."""
    policy = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    signer = dkim.DKIM(message)
    signer.hasher = hashlib.sha256
    body_hash = base64.b64encode(hashlib.sha256(policy.canonicalize_body(signer.body)).digest())
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", b"example.com"),
              (b"s", selector.encode()), *tags, (b"h", b" : ".join(signed)),
              (b"bh", body_hash), (b"b", b"")]  # fmt: skip
    value = signer.gen_header(
        fields, list(signed), policy, b"DKIM-Signature", parse_pem_private_key(key.dkimpy_key)
    )
    return b"DKIM-Signature: " + value + message


def judge(dns: DnsTestServer, message: bytes, clock: Callable[[], float] | None = None, **options: object):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, {"dkim": {"arc": False, **options}}, clock=clock)
    outcome = evaluate(chain, message, client_ip="192.0.2.25", recipients=["bob@test.example"])
    dkim_findings = [f.finding for f in outcome.decision.findings if f.finding.symbol.startswith("DKIM_")]
    return dkim_findings, authentication_results(outcome.decision.headers)


def test_rsa_and_ed25519_pass_with_domain_selector_and_b(
    dns: DnsTestServer, rsa2048: PrivateKey, ed: PrivateKey
) -> None:
    message = sign(sign(MESSAGE, "rsa", rsa2048), "ed", ed)
    findings, header = judge(dns, message)
    assert [(f.symbol, f.detail) for f in findings] == [
        ("DKIM_PASS", "d=example.com s=ed a=ed25519-sha256"),
        ("DKIM_PASS", "d=example.com s=rsa a=rsa-sha256"),
    ]
    header = " ".join(header.split())  # folded where the line is long (header.b may be quoted)
    assert "dkim=pass (256-bit key) header.d=example.com header.s=ed header.b=" in header
    assert "dkim=pass (2048-bit key) header.d=example.com header.s=rsa header.b=" in header


def test_one_good_and_one_bad_signature_are_reported_apart(
    dns: DnsTestServer, rsa2048: PrivateKey, ed: PrivateKey
) -> None:
    message = sign(MESSAGE, "rsa", rsa2048)
    bad = sign(message.replace(b"noon", b"one"), "ed", ed).replace(b"one", b"noon")
    findings, _ = judge(dns, bad)
    assert [f.symbol for f in findings] == ["DKIM_FAIL", "DKIM_PASS"]
    assert "s=ed" in findings[0].detail and "body hash" in findings[0].detail


def test_key_below_the_minimum_is_a_permanent_error(dns: DnsTestServer, rsa1024: PrivateKey) -> None:
    message = sign(MESSAGE, "small", rsa1024)
    assert [f.symbol for f in judge(dns, message)[0]] == ["DKIM_PASS"]
    findings, header = judge(dns, message, min_rsa_bits=2048)
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"] and "too small" in findings[0].detail
    assert "dkim=permerror" in header


def test_rsa_sha1_is_refused(dns: DnsTestServer, rsa2048: PrivateKey) -> None:
    findings, _ = judge(dns, sign(MESSAGE, "rsa", rsa2048, signature_algorithm=b"rsa-sha1"))
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"] and "RFC 8301" in findings[0].detail


@pytest.mark.parametrize(
    ("selector", "reason"),
    [("missing", "no key"), ("revoked", "unusable key record"), ("wrongtype", "does not match")],
)
def test_key_problems_are_permanent_errors(
    dns: DnsTestServer, rsa2048: PrivateKey, selector: str, reason: str
) -> None:
    findings, _ = judge(dns, sign(MESSAGE, selector, rsa2048))
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"]
    assert f"s={selector}" in findings[0].detail and reason in findings[0].detail


def test_dns_failure_is_a_temporary_error(dns: DnsTestServer, rsa2048: PrivateKey) -> None:
    dns.fault("broken._domainkey.example.com", Fault.SERVFAIL)
    findings, header = judge(dns, sign(MESSAGE, "broken", rsa2048))
    assert [f.symbol for f in findings] == ["DKIM_TEMPERROR"]
    assert "dkim=temperror" in header


def test_from_must_be_signed(dns: DnsTestServer, rsa2048: PrivateKey) -> None:
    findings, _ = judge(dns, sign_with_tags(MESSAGE, "rsa", rsa2048, [], signed=(b"subject",)))
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"] and "From" in findings[0].detail


def test_timestamps(dns: DnsTestServer, rsa2048: PrivateKey) -> None:
    now = int(time.time())
    valid = sign_with_tags(MESSAGE, "rsa", rsa2048, [(b"t", b"%d" % now), (b"x", b"%d" % (now + 3600))])
    assert [f.symbol for f in judge(dns, valid)[0]] == ["DKIM_PASS"]
    # checked against our clock, not dkimpy's ten-hour leeway
    expired = sign_with_tags(
        MESSAGE, "rsa", rsa2048, [(b"t", b"%d" % (now - 7200)), (b"x", b"%d" % (now - 3600))]
    )
    findings, _ = judge(dns, expired)
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"] and "expired" in findings[0].detail
    findings, _ = judge(dns, valid, clock=lambda: now - 3600.0)
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"] and "future" in findings[0].detail
    findings, _ = judge(dns, valid, clock=lambda: now - 3600.0, clock_skew=7200)
    assert [f.symbol for f in findings] == ["DKIM_PASS"]
    backwards = sign_with_tags(MESSAGE, "rsa", rsa2048, [(b"t", b"%d" % now), (b"x", b"%d" % (now - 10))])
    findings, _ = judge(dns, backwards, clock_skew=60)
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"]


def test_body_length_limit(dns: DnsTestServer, rsa2048: PrivateKey) -> None:
    signed = sign(MESSAGE, "rsa", rsa2048, length=True)
    assert [f.symbol for f in judge(dns, signed)[0]] == ["DKIM_PASS"]
    appended = signed + b"\r\nClick http://evil.example/ now\r\n"
    findings, header = judge(dns, appended)
    assert [f.symbol for f in findings] == ["DKIM_PASS", "DKIM_UNSIGNED_BODY"]
    assert "dkim=pass" in header
    findings, header = judge(dns, appended, accept_length_limited=False)
    assert [f.symbol for f in findings] == ["DKIM_FAIL", "DKIM_UNSIGNED_BODY"]
    assert "dkim=policy" in header
    truncated = signed.replace(b"See you at noon.\r\n", b"See\r\n")
    findings, _ = judge(dns, truncated)
    assert [f.symbol for f in findings] == ["DKIM_FAIL"] and "shorter than l=" in findings[0].detail


def test_authenticated_clients_are_not_verified_by_default(dns: DnsTestServer, rsa2048: PrivateKey) -> None:
    chain = auth_chain(dns, {"dkim": {}})
    outcome = evaluate(
        chain, sign(MESSAGE, "rsa", rsa2048), auth_user="alice", recipients=["bob@test.example"]
    )
    assert not any(f.finding.symbol.startswith("DKIM") for f in outcome.decision.findings)
    chain = auth_chain(dns, {"dkim": {"check_outbound": True}})
    outcome = evaluate(
        chain, sign(MESSAGE, "rsa", rsa2048), auth_user="alice", recipients=["bob@test.example"]
    )
    assert [f.finding.symbol for f in outcome.decision.findings] == ["DKIM_PASS"]


def test_min_rsa_bits_below_rfc8301_is_a_config_error(dns: DnsTestServer) -> None:
    from milterfilters.core.schema import ConfigError

    with pytest.raises(ConfigError, match="RFC 8301"):
        auth_chain(dns, {"dkim": {"min_rsa_bits": 512}})


def test_many_results_fold_into_one_valid_header_field(dns: DnsTestServer, ed: PrivateKey) -> None:
    import authres

    message = MESSAGE
    for _ in range(10):
        message = sign(message, "ed", ed)
    findings, header = judge(dns, message)
    assert [f.symbol for f in findings] == ["DKIM_PASS"] * 10
    lines = header.split("\n")
    assert len(lines) == 11 and all(len(line) < 200 for line in lines)  # authserv-id, 10 results
    assert all(line.startswith("\t") for line in lines[1:])
    parsed = authres.AuthenticationResultsHeader.parse_value(" ".join(line.strip() for line in lines))
    assert str(parsed.authserv_id) == "mx.test.example" and len(parsed.results) == 10


def test_a_signature_field_is_found_in_any_case_and_one_quoted_in_the_body_is_none(
    dns: DnsTestServer, rsa2048: PrivateKey
) -> None:
    signed = sign(MESSAGE, "rsa", rsa2048)
    assert signed.startswith(b"DKIM-Signature:")
    findings, _ = judge(dns, b"dkim-signature:" + signed[len(b"DKIM-Signature:") :])
    assert [f.symbol for f in findings] == ["DKIM_PASS"]
    quoted = MESSAGE + b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; bh=; b=\r\n"
    findings, header = judge(dns, quoted)
    assert [f.symbol for f in findings] == ["DKIM_NONE"] and "dkim=none" in header


def test_a_key_too_costly_to_verify_with_is_refused(dns: DnsTestServer, rsa2048: PrivateKey) -> None:
    # dkimpy's pure-Python RSA holds the GIL: a 16384-bit exponent stops every thread ~13 s
    findings, header = judge(dns, sign(MESSAGE, "slow", rsa2048))
    assert [f.symbol for f in findings] == ["DKIM_PERMERROR"]
    assert "exponent of 2000 bits is too large" in findings[0].detail
    assert "dkim=permerror" in header
