"""Authenticated allow-lists: a listed sender domain counts only when the message's From
domain is authenticated (aligned SPF pass or DKIM); a listed network counts by client IP."""

from __future__ import annotations

import dkim
import pytest

from milterfilters.api import evaluate
from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.core.schema import ConfigError
from milterfilters.core.verdict import Action
from tests.support.dnsserver import DnsTestServer
from tests.support.mailauth import auth_chain

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
MAIL = b"From: %s\r\nTo: bob@test.example\r\nSubject: order\r\n\r\nYour order.\r\n"
SECTIONS = {
    "spf": {},
    "dkim": {"arc": False},
    "allowlist": {"domains": ["partner.example"], "networks": ["198.51.100.0/24"]},
    "scores": {"ALLOWLIST_DOMAIN": -20.0},
}


def zone_records(key: PrivateKey) -> dict[str, list[tuple[str, str]]]:
    """What the ``dns`` fixture (tests/auth/conftest.py) serves for these tests."""
    return {
        "s._domainkey.mail.partner.example": [("TXT", key.public_record)],
        "partner.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
        "spoofer.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    }


def judge(dns: DnsTestServer, message: bytes, mail_from: str, client_ip: str = "192.0.2.9"):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, SECTIONS)
    return evaluate(chain, message, client_ip=client_ip, mail_from=mail_from, recipients=["bob@test.example"])


def symbols(outcome) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.finding.symbol for f in outcome.decision.findings if f.finding.symbol.startswith("ALLOWLIST")]


def test_listed_domain_with_aligned_spf_counts(dns: DnsTestServer) -> None:
    out = judge(dns, MAIL % b"sales@partner.example", mail_from="bounce@partner.example")
    assert symbols(out) == ["ALLOWLIST_DOMAIN"] and out.decision.score <= -20


def test_listed_domain_with_aligned_dkim_counts_for_a_subdomain(dns: DnsTestServer, key: PrivateKey) -> None:
    message = MAIL % b"sales@shop.partner.example"
    message = (
        dkim.sign(
            message, b"s", b"mail.partner.example", key.dkimpy_key, signature_algorithm=b"ed25519-sha256"
        )
        + message
    )
    out = judge(dns, message, mail_from="x@unrelated.example")
    assert symbols(out) == ["ALLOWLIST_DOMAIN"]
    assert "dkim:mail.partner.example" in out.decision.findings[-1].finding.detail


def test_forged_listed_domain_gets_no_bonus(dns: DnsTestServer) -> None:
    # SPF passes, but for the spoofer's own MAIL FROM domain: not aligned with From
    out = judge(dns, MAIL % b"ceo@partner.example", mail_from="x@spoofer.example")
    assert symbols(out) == ["ALLOWLIST_UNAUTHENTICATED"]
    assert out.decision.score > 0  # flagged, not rewarded
    # so a spoofed message is judged on its content as if it were not listed at all
    spam = judge(
        dns, (MAIL % b"ceo@partner.example").replace(b"Your order.", GTUBE), mail_from="x@spoofer.example"
    )
    assert spam.action is Action.REJECT


def test_listed_network_counts_by_client_address(dns: DnsTestServer) -> None:
    out = judge(dns, MAIL % b"a@anyone.example", mail_from="a@anyone.example", client_ip="198.51.100.20")
    assert symbols(out) == ["ALLOWLIST_NETWORK"]
    assert symbols(judge(dns, MAIL % b"a@anyone.example", mail_from="a@anyone.example")) == []


def test_bad_entries_are_config_errors(dns: DnsTestServer) -> None:
    with pytest.raises(ConfigError, match="not an IP network"):
        auth_chain(dns, {"allowlist": {"networks": ["10.0.0.0/33"]}})
    with pytest.raises(ConfigError, match="domain names"):
        auth_chain(dns, {"allowlist": {"domains": ["someone@partner.example"]}})
