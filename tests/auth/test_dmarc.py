"""DMARC (RFC 7489): record parsing, organizational domains, alignment, p/sp/pct, the From
field edge cases, and the configured actions, through the chain with the DNS on loopback."""

from __future__ import annotations

import dkim
import pytest

from milterfilters.api import evaluate
from milterfilters.auth import dmarc_policy as dmarc
from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.auth.dmarc_policy import (
    DmarcRecord,
    DmarcRecordError,
    is_aligned,
    organizational_domain,
    parse_record,
)
from milterfilters.core.verdict import Action
from tests.support.dnsserver import DnsTestServer, Fault
from tests.support.mailauth import auth_chain, authentication_results

# -- pure parts ------------------------------------------------------------------------


def test_parse_record() -> None:
    assert parse_record("v=DMARC1; p=reject") == DmarcRecord("reject")
    assert parse_record("v=DMARC1;p=quarantine;sp=none;pct=20;adkim=s;aspf=r;rua=mailto:x@y") == DmarcRecord(
        "quarantine", "none", 20, True, False
    )
    # an invalid p with a report address counts as p=none (RFC 7489 6.6.3)
    assert parse_record("v=DMARC1; p=bogus; rua=mailto:d@example.com").policy == "none"
    # invalid optional tags take their defaults (RFC 7489 6.3); the cases are in test_dmarc_suite
    assert parse_record("v=DMARC1; p=reject; pct=150") == DmarcRecord("reject")
    for bad in ("v=DMARC1; p=bogus", "p=reject; v=DMARC1", "v=DMARC1; p=bogus; rua=bogus"):
        with pytest.raises(DmarcRecordError):
            parse_record(bad)


def test_organizational_domain_from_the_shipped_public_suffix_list() -> None:
    assert organizational_domain("mail.news.example.co.uk") == "example.co.uk"
    assert organizational_domain("a.b.example.com") == "example.com"
    assert organizational_domain("foo.github.io") == "foo.github.io"  # private section
    assert is_aligned("bounce.example.com", "example.com", strict=False)
    assert not is_aligned("bounce.example.com", "example.com", strict=True)
    assert not is_aligned("example.co.uk", "other.co.uk", strict=False)


def test_pct_samples_and_downgrades() -> None:
    def lookup(name: str) -> list[bytes]:
        return [b"v=DMARC1; p=reject; pct=25"] if name == "_dmarc.example.com" else []

    def result(sample: float) -> str:
        r = dmarc.evaluate("example.com", dmarc.Identifiers(), lookup_txt=lookup, sample=lambda: sample)
        assert r.result == "fail" and r.policy == "reject"
        return r.disposition

    assert result(0.10) == "reject"
    assert result(0.30) == "quarantine"  # sampled out: the next policy down (RFC 7489 6.6.4)


# -- through the chain -----------------------------------------------------------------

MAIL = b"From: %s\r\nTo: bob@test.example\r\nSubject: hello\r\nMessage-ID: <1@x>\r\n\r\nHello.\r\n"


def zone_records(key: PrivateKey) -> dict[str, list[tuple[str, str]]]:
    """What the ``dns`` fixture (tests/auth/conftest.py) serves for these tests."""
    return {
        "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.com")],
        "_dmarc.strict.example": [("TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")],
        "_dmarc.sub.strict.example": [("TXT", "v=DMARC1; p=none")],
        "_dmarc.half.example": [("TXT", "v=DMARC1; p=reject; pct=0")],
        "_dmarc.two.example": [("TXT", "v=DMARC1; p=reject"), ("TXT", "v=DMARC1; p=none")],
        "_dmarc.slow.example": [("TXT", "v=DMARC1; p=reject")],
        "_dmarc.other.example": [("TXT", "v=DMARC1; p=reject")],
        "sel._domainkey.example.com": [("TXT", key.public_record)],
        "sel._domainkey.mail.example.com": [("TXT", key.public_record)],
        "sel._domainkey.strict.example": [("TXT", key.public_record)],
        "sel._domainkey.mail.strict.example": [("TXT", key.public_record)],
        "sel._domainkey.thirdparty.example": [("TXT", key.public_record)],
        **{domain: [("TXT", record)] for domain, record in SPF_RECORDS.items()},
    }


def signed(author: bytes, domain: str, key: PrivateKey) -> bytes:
    message = MAIL % author
    return (
        dkim.sign(message, b"sel", domain.encode(), key.dkimpy_key, signature_algorithm=b"ed25519-sha256")
        + message
    )


#: SPF: the test client (192.0.2.25) may send for these domains; other.example forbids it
SPF_PASS = "v=spf1 ip4:192.0.2.0/24 -all"
SPF_RECORDS = {
    "example.com": SPF_PASS, "bounces.example.com": SPF_PASS, "strict.example": SPF_PASS,
    "mail.strict.example": SPF_PASS, "thirdparty.example": SPF_PASS, "other.example": "v=spf1 -all",
}  # fmt: skip


def judge(dns: DnsTestServer, message: bytes, mail_from: str = "x@nowhere.example", **dmarc: object):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, {"spf": {}, "dkim": {"arc": False}, "dmarc": dmarc})
    return evaluate(
        chain, message, client_ip="192.0.2.25", mail_from=mail_from, recipients=["bob@test.example"]
    )


def dmarc_symbols(outcome) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.finding.symbol for f in outcome.decision.findings if f.finding.symbol.startswith("DMARC")]


def test_aligned_spf_passes(dns: DnsTestServer) -> None:
    out = judge(dns, MAIL % b"a@example.com", mail_from="bounce@bounces.example.com")  # relaxed alignment
    assert dmarc_symbols(out) == ["DMARC_PASS"] and out.action is Action.ACCEPT
    assert "dmarc=pass" in authentication_results(out.decision.headers)
    assert "header.from=example.com" in authentication_results(out.decision.headers)


def test_aligned_dkim_passes(dns: DnsTestServer, key: PrivateKey) -> None:
    out = judge(dns, signed(b"a@example.com", "mail.example.com", key))  # SPF for nowhere.example: none
    assert dmarc_symbols(out) == ["DMARC_PASS"] and out.action is Action.ACCEPT


def test_unaligned_spf_and_dkim_fail_and_p_reject_rejects(dns: DnsTestServer, key: PrivateKey) -> None:
    # SPF passes and DKIM passes, but for thirdparty.example: neither is aligned with From
    out = judge(dns, signed(b"a@example.com", "thirdparty.example", key), mail_from="x@thirdparty.example")
    assert [f.finding.symbol for f in out.decision.findings if f.finding.symbol.startswith("DKIM")] == [
        "DKIM_PASS"
    ]
    assert dmarc_symbols(out) == ["DMARC_FAIL_REJECT"]
    assert out.action is Action.REJECT
    assert (out.decision.reply.code, out.decision.reply.enhanced) == (550, "5.7.1")  # type: ignore[union-attr]
    assert "example.com" in out.decision.reply.text  # type: ignore[union-attr]


def test_strict_alignment(dns: DnsTestServer, key: PrivateKey) -> None:
    relaxed_only = signed(b"a@strict.example", "mail.strict.example", key)
    out = judge(dns, relaxed_only, mail_from="b@mail.strict.example")
    assert dmarc_symbols(out) == ["DMARC_FAIL_REJECT"]
    out = judge(dns, signed(b"a@strict.example", "strict.example", key))
    assert dmarc_symbols(out) == ["DMARC_PASS"]


def test_subdomain_policy(dns: DnsTestServer) -> None:
    # no record at news.example.com: the organizational domain's sp=quarantine applies
    out = judge(dns, MAIL % b"a@news.example.com")
    assert dmarc_symbols(out) == ["DMARC_FAIL_QUARANTINE"] and out.action is Action.TAG
    out = judge(dns, MAIL % b"a@news.example.com", quarantine_policy_action="quarantine")
    assert out.action is Action.QUARANTINE
    # a subdomain with its own record uses its own p
    out = judge(dns, MAIL % b"a@sub.strict.example")
    assert dmarc_symbols(out) == ["DMARC_FAIL_NONE"] and out.action is Action.ACCEPT


def test_pct_zero_never_applies_reject(dns: DnsTestServer) -> None:
    out = judge(dns, MAIL % b"a@half.example")
    assert dmarc_symbols(out) == ["DMARC_FAIL_QUARANTINE"] and out.action is Action.TAG


def test_score_only_and_tag_modes(dns: DnsTestServer) -> None:
    out = judge(dns, MAIL % b"a@example.com", reject_policy_action="score")
    assert dmarc_symbols(out) == ["DMARC_FAIL_REJECT"] and out.action is not Action.REJECT
    out = judge(dns, MAIL % b"a@example.com", reject_policy_action="tag")
    assert out.action is Action.TAG


def test_no_record(dns: DnsTestServer) -> None:
    out = judge(dns, MAIL % b"a@norecord.example")
    assert dmarc_symbols(out) == ["DMARC_NONE"] and out.action is Action.ACCEPT
    assert "dmarc=none" in authentication_results(out.decision.headers)


def test_several_records_are_a_permanent_error(dns: DnsTestServer) -> None:
    assert dmarc_symbols(judge(dns, MAIL % b"a@two.example")) == ["DMARC_PERMERROR"]


def test_dns_failure_is_a_temporary_error(dns: DnsTestServer) -> None:
    dns.fault("_dmarc.slow.example", Fault.SERVFAIL)
    out = judge(dns, MAIL % b"a@slow.example")
    assert dmarc_symbols(out) == ["DMARC_TEMPERROR"] and out.action is Action.ACCEPT


def test_multiple_from_fields_are_judged_by_the_strictest_domain(dns: DnsTestServer) -> None:
    # the OpenDMARC bypass: a first From that passes hides a second, spoofed one
    two_froms = (
        b"From: a@example.com\r\nFrom: ceo@other.example\r\nTo: b@test.example\r\nSubject: hi\r\n\r\nx\r\n"
    )
    out = judge(dns, two_froms, mail_from="a@example.com")
    assert dmarc_symbols(out) == ["DMARC_MULTIPLE_FROM", "DMARC_FAIL_REJECT"]
    assert out.action is Action.REJECT and "other.example" in out.decision.reply.text  # type: ignore[union-attr]
    # one From field with two addresses: the same rule
    one_field = b"From: a@example.com, ceo@other.example\r\nTo: b@test.example\r\nSubject: hi\r\n\r\nx\r\n"
    out = judge(dns, one_field, mail_from="a@example.com")
    assert dmarc_symbols(out) == ["DMARC_FAIL_REJECT"]
    # both fields aligned: still flagged, but passes
    same = b"From: a@example.com\r\nFrom: b@example.com\r\nSubject: hi\r\n\r\nx\r\n"
    assert dmarc_symbols(judge(dns, same, mail_from="a@example.com")) == ["DMARC_MULTIPLE_FROM", "DMARC_PASS"]
    out = judge(dns, same, mail_from="a@example.com", malformed_from="reject")
    assert out.action is Action.REJECT and "exactly one From" in out.decision.reply.text  # type: ignore[union-attr]


def test_no_from(dns: DnsTestServer) -> None:
    out = judge(dns, b"To: b@test.example\r\nSubject: hi\r\n\r\nx\r\n", mail_from="a@example.com")
    assert dmarc_symbols(out) == ["DMARC_NO_FROM", "DMARC_PERMERROR"]
    assert "dmarc=permerror" in authentication_results(out.decision.headers)
    out = judge(dns, b"Subject: hi\r\n\r\nx\r\n", mail_from="a@example.com", malformed_from="reject")
    assert out.action is Action.REJECT


def test_authenticated_submission_is_not_judged(dns: DnsTestServer) -> None:
    chain = auth_chain(dns, {"spf": {}, "dkim": {"arc": False}, "dmarc": {}})
    out = evaluate(chain, MAIL % b"a@example.com", auth_user="alice", mail_from="a@example.com")
    assert dmarc_symbols(out) == [] and out.action is Action.ACCEPT


def test_aligned_dkim_key_outage_defers_instead_of_rejecting(dns: DnsTestServer, key: PrivateKey) -> None:
    dns.fault("sel._domainkey.example.com", Fault.SERVFAIL)
    out = judge(dns, signed(b"a@example.com", "example.com", key))
    # the signature might be good: a 4xx makes the sender retry, a 5xx would lose the mail
    assert dmarc_symbols(out) == ["DMARC_TEMPERROR"]
    assert out.action is Action.TEMPFAIL and out.decision.reply.code == 451  # type: ignore[union-attr]
    # an unaligned signature with a DNS problem cannot save the message
    out = judge(dns, signed(b"a@other.example", "example.com", key))
    assert dmarc_symbols(out) == ["DMARC_FAIL_REJECT"] and out.action is Action.REJECT


def test_dmarc_without_dkim_is_warned_about(dns: DnsTestServer, caplog: pytest.LogCaptureFixture) -> None:
    auth_chain(dns, {"dmarc": {}})
    assert "dkim filter is disabled" in caplog.text
    caplog.clear()
    auth_chain(dns, {"dkim": {"dry_run": True}, "dmarc": {}})
    assert "dkim filter is in dry-run" in caplog.text
    caplog.clear()
    auth_chain(dns, {"dkim": {}, "dmarc": {}})
    assert "dkim filter" not in caplog.text
