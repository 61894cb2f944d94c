"""Security regression: allow-list credit needs a DKIM signature that covers the whole body; a
genuine partner signature with ``l=`` plus appended text earns nothing (issue 10)."""

from __future__ import annotations

import dkim

from milterfilters.api import evaluate
from milterfilters.auth.dkim_filter import length_limited_passes
from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.core.verdict import Finding
from tests.support.dnsserver import DnsTestServer
from tests.support.mailauth import auth_chain

MAIL = b"From: sales@partner.example\r\nTo: bob@test.example\r\nSubject: order\r\n\r\nYour order.\r\n"
APPENDED = b"Wire the payment to IBAN XX00 0000 0000 today.\r\n"


def zone_records(key: PrivateKey) -> dict[str, list[tuple[str, str]]]:
    """What the ``dns`` fixture serves: the partner's DKIM key."""
    return {"s._domainkey.partner.example": [("TXT", key.public_record)]}


def sign(key: PrivateKey, message: bytes, *, length: bool) -> bytes:
    algorithm = b"ed25519-sha256"
    return dkim.sign(
        message, b"s", b"partner.example", key.dkimpy_key, signature_algorithm=algorithm, length=length
    )


def judge(dns: DnsTestServer, message: bytes, **dkim_options: object):  # type: ignore[no-untyped-def]
    chain = auth_chain(
        dns, {"dkim": {"arc": False, **dkim_options}, "allowlist": {"domains": ["partner.example"]}}
    )
    return evaluate(chain, message, client_ip="203.0.113.40", mail_from="x@elsewhere.example",
                    recipients=["bob@test.example"])  # fmt: skip


def test_partner_signature_with_length_limit_and_appended_text_gets_no_allowlist_credit(
    dns: DnsTestServer, key: PrivateKey
) -> None:
    message = sign(key, MAIL, length=True) + MAIL + APPENDED
    out = judge(dns, message)
    assert {"DKIM_PASS", "DKIM_UNSIGNED_BODY"} <= set(out.decision.symbols)
    assert "ALLOWLIST_DOMAIN" not in out.decision.symbols
    assert "ALLOWLIST_UNAUTHENTICATED" in out.decision.symbols


def test_whole_body_signature_beside_a_length_limited_one_still_earns_credit(
    dns: DnsTestServer, key: PrivateKey
) -> None:
    message = sign(key, MAIL, length=True) + sign(key, MAIL, length=False) + MAIL
    out = judge(dns, message)
    assert "ALLOWLIST_DOMAIN" in out.decision.symbols
    # appended text breaks the whole-body signature: no credit left
    out = judge(dns, message + APPENDED)
    assert "ALLOWLIST_DOMAIN" not in out.decision.symbols


def test_length_limited_signature_reported_as_policy_is_not_counted_as_a_pass() -> None:
    found = [
        Finding("DKIM_UNSIGNED_BODY", "d=partner.example s=s a=rsa-sha256: l= leaves 9 body bytes unsigned"),
        Finding(
            "DKIM_UNSIGNED_BODY",
            "d=other.example s=s a=rsa-sha256: l= leaves 9 body bytes unsigned; not counted as a pass",
        ),
    ]
    assert length_limited_passes(found) == {"partner.example": 1}


def test_length_limited_passes_reads_what_the_dkim_filter_reports(
    dns: DnsTestServer, key: PrivateKey
) -> None:
    out = judge(dns, sign(key, MAIL, length=True) + MAIL + APPENDED)
    assert length_limited_passes(f.finding for f in out.decision.findings) == {"partner.example": 1}
    out = judge(dns, sign(key, MAIL, length=True) + MAIL + APPENDED, accept_length_limited=False)
    assert length_limited_passes(f.finding for f in out.decision.findings) == {}
