"""ARC (RFC 8617): the chain is validated and reported as arc=, and a trusted sealer that
recorded dmarc=pass overrides the DMARC failure that forwarding through it caused."""

from __future__ import annotations

import dkim
import pytest

from milterfilters.api import evaluate
from milterfilters.auth.dkim_keys import PrivateKey, generate_key
from milterfilters.core.verdict import Action
from tests.support.dnsserver import DnsTestServer, Fault, Zone
from tests.support.mailauth import auth_chain, authentication_results

ORIGINAL = (
    b"From: Alice <alice@example.com>\r\nTo: team@lists.example.org\r\nSubject: minutes\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <3@example.com>\r\n\r\nMinutes attached.\r\n"
)


@pytest.fixture(scope="module")
def author_key() -> PrivateKey:
    return generate_key("ed25519")[1]


@pytest.fixture(scope="module")
def list_key() -> PrivateKey:
    return generate_key("rsa", 2048)[1]


@pytest.fixture
def dns(dns_server: DnsTestServer, author_key: PrivateKey, list_key: PrivateKey) -> DnsTestServer:
    dns_server.zone = Zone(
        {
            "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")],
            "a1._domainkey.example.com": [("TXT", author_key.public_record)],
            "arc._domainkey.lists.example.org": [("TXT", list_key.public_record)],
        }
    )
    return dns_server


@pytest.fixture
def forwarded(author_key: PrivateKey, list_key: PrivateKey) -> bytes:
    """Alice's signed message as a mailing list forwards it: tagged, footer added, sealed."""
    signed = dkim.sign(
        ORIGINAL, b"a1", b"example.com", author_key.dkimpy_key, signature_algorithm=b"ed25519-sha256"
    )
    received = (
        b"Authentication-Results: lists.example.org; arc=none; dkim=pass header.d=example.com;"
        b" dmarc=pass header.from=example.com\r\n" + signed + ORIGINAL
    )
    modified = received.replace(b"Subject: minutes", b"Subject: [team] minutes") + b"--\r\nteam list\r\n"
    seal = dkim.arc_sign(modified, b"arc", b"lists.example.org", list_key.dkimpy_key, b"lists.example.org")
    assert len(seal) == 3
    return b"".join(seal) + modified


def judge(dns: DnsTestServer, message: bytes, trusted: list[str]):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, {"dkim": {}, "dmarc": {"trusted_arc_sealers": trusted}})
    return evaluate(chain, message, client_ip="192.0.2.80", mail_from="team-bounces@lists.example.org",
                    recipients=["bob@test.example"])  # fmt: skip


def symbols(outcome) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.finding.symbol for f in outcome.decision.findings]


def test_forwarding_breaks_dkim_and_dmarc_rejects_without_trust(dns: DnsTestServer, forwarded: bytes) -> None:
    out = judge(dns, forwarded, trusted=[])
    assert symbols(out) == ["DKIM_FAIL", "ARC_PASS", "DMARC_FAIL_REJECT"]
    assert out.action is Action.REJECT
    header = authentication_results(out.decision.headers)
    assert "arc=pass" in header and "lists.example.org" in header


def test_a_trusted_sealer_overrides_the_dmarc_failure(dns: DnsTestServer, forwarded: bytes) -> None:
    out = judge(dns, forwarded, trusted=["Lists.Example.Org"])
    assert symbols(out) == ["DKIM_FAIL", "ARC_PASS", "DMARC_ARC_OVERRIDE"]
    assert out.action is Action.ACCEPT
    assert "dmarc=fail" in authentication_results(out.decision.headers)  # the result stays what it is


def test_a_broken_chain_gives_no_override(dns: DnsTestServer, forwarded: bytes) -> None:
    tampered = forwarded.replace(b"Minutes attached.", b"Invoice attached.")
    out = judge(dns, tampered, trusted=["lists.example.org"])
    assert symbols(out) == ["DKIM_FAIL", "ARC_FAIL", "DMARC_FAIL_REJECT"]
    assert out.action is Action.REJECT
    assert "arc=fail" in authentication_results(out.decision.headers)


def test_sealer_key_outage_defers_instead_of_rejecting(dns: DnsTestServer, forwarded: bytes) -> None:
    dns.fault("arc._domainkey.lists.example.org", Fault.SERVFAIL)
    out = judge(dns, forwarded, trusted=["lists.example.org"])
    # the trusted sealer might have vouched for it: try again later rather than reject
    assert symbols(out) == ["DKIM_FAIL", "ARC_TEMPERROR", "DMARC_TEMPERROR"]
    assert out.action is Action.TEMPFAIL and out.decision.reply.code == 451  # type: ignore[union-attr]
    # an untrusted sealer changes nothing: rejected as before
    assert judge(dns, forwarded, trusted=[]).action is Action.REJECT


def test_unsealed_message_is_arc_none(dns: DnsTestServer) -> None:
    out = judge(dns, ORIGINAL, trusted=[])
    assert "arc=none" in authentication_results(out.decision.headers)
    assert not any(s.startswith("ARC_") for s in symbols(out))


def test_a_seal_quoted_in_the_body_is_no_arc_set(dns: DnsTestServer) -> None:
    quoted = ORIGINAL + b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=list.example; s=s; b=\r\n"
    out = judge(dns, quoted, trusted=[])
    assert "arc=none" in authentication_results(out.decision.headers)
    assert not any(s.startswith("ARC_") for s in symbols(out))
