"""Security regressions: DMARC record discovery (RFC 7489 6.6.3) cannot be steered by a TXT
record that merely looks like a DMARC record (issue 10)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from milterfilters.api import evaluate
from milterfilters.auth import dmarc_policy as dmarc
from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.core.verdict import Action
from tests.support.dnsserver import DnsTestServer
from tests.support.mailauth import auth_chain, authentication_results

MAIL = b"From: ceo@%s\r\nTo: bob@test.example\r\nSubject: wire transfer\r\n\r\nPay now.\r\n"


def zone_records(key: PrivateKey) -> dict[str, list[tuple[str, str]]]:
    """What the ``dns`` fixture serves: look-alike records at subdomains of p=reject domains."""
    return {
        "_dmarc.bank.example": [("TXT", "v=DMARC1; p=reject")],
        "_dmarc.pay.bank.example": [("TXT", "v=DMARC1x; p=none")],
        "_dmarc.ten.bank.example": [("TXT", "v=DMARC10; p=none")],
        "_dmarc.shop.example": [("TXT", "v=DMARC1x; p=none"), ("TXT", "v=DMARC1; p=reject")],
    }


def judge(dns: DnsTestServer, domain: str):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, {"dmarc": {}})
    return evaluate(chain, MAIL % domain.encode(), client_ip="203.0.113.9", mail_from="x@attacker.example",
                    recipients=["bob@test.example"])  # fmt: skip


def test_prefix_lookalike_record_does_not_hide_the_organizational_p_reject(dns: DnsTestServer) -> None:
    for domain in ("pay.bank.example", "ten.bank.example"):
        out = judge(dns, domain)
        assert "DMARC_FAIL_REJECT" in out.decision.symbols, domain
        assert out.action is Action.REJECT
        assert "dmarc=fail" in authentication_results(out.decision.headers)


def test_bogus_record_beside_a_valid_one_is_not_several_records(dns: DnsTestServer) -> None:
    out = judge(dns, "shop.example")
    assert "DMARC_PERMERROR" not in out.decision.symbols
    assert "DMARC_FAIL_REJECT" in out.decision.symbols and out.action is Action.REJECT


@given(st.text(alphabet=st.characters(blacklist_characters=";\t \r\n"), min_size=1, max_size=8))
def test_any_continuation_of_the_version_tag_is_not_a_dmarc_record(suffix: str) -> None:
    text = f"v=DMARC1{suffix}; p=none"
    assert not dmarc.is_dmarc_record(text)

    def lookup(name: str) -> list[bytes]:
        records = {"_dmarc.a.bank.example": [text], "_dmarc.bank.example": ["v=DMARC1; p=reject"]}
        return [r.encode("utf-8", "surrogatepass") for r in records.get(name, [])]

    found = dmarc.discover_policy("a.bank.example", lookup)
    assert found is not None and found.domain == "bank.example" and found.record.policy == "reject"
