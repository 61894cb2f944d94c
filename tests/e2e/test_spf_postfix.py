"""SPF behind a real Postfix: a fail is scored or rejected as configured, the result is in
the Authentication-Results header of delivered mail, and a DNS server that never answers
tempfails or scores mail but never loses it. The milter's DNS is a real server on loopback,
in this test process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dnsserver import DnsTestServer, Fault, Zone

from .conftest import StackFactory
from .mta import unique_token

pytestmark = pytest.mark.e2e

ALLOWED = "203.0.113.7"  # the client IP the sender domains publish
OTHER = "198.51.100.9"
HELO = "client.example"  # what the e2e SMTP client says in EHLO

ZONE = {
    "spf-e2e.example": [("TXT", f"v=spf1 ip4:{ALLOWED} -all")],
    "slow.spf-e2e.example": [("TXT", f"v=spf1 ip4:{ALLOWED} -all")],
    HELO: [("TXT", f"v=spf1 ip4:{ALLOWED} -all")],
}


@pytest.fixture(scope="module")
def spf_dns() -> Iterator[DnsTestServer]:
    with DnsTestServer(Zone(ZONE)) as server:
        yield server


def spf_config(server: DnsTestServer, extra: str = "") -> str:
    return (
        f'[dns]\nnameservers = ["{server.address}"]\ntimeout = 1.0\n\n'
        '[milter]\nauthserv_id = "mx.e2e.test"\n\n'
        f"[spf]\nenabled = true\n{extra}"
    )


def sender(domain: str = "spf-e2e.example") -> str:
    return f"spf-{unique_token()}@{domain}"


@pytest.mark.parametrize(("client", "result"), [(OTHER, "fail"), (ALLOWED, "pass")])
def test_spf_result_is_scored_and_reported_in_the_delivered_mail(
    postfix_with_milter: StackFactory, spf_dns: DnsTestServer, client: str, result: str
) -> None:
    stack = postfix_with_milter(spf_config(spf_dns))
    mail_from = sender()
    sent = stack.send(f"spf {result}", mail_from=mail_from, xclient={"ADDR": client})
    assert sent.transcript.accepted, sent.transcript.describe()
    msg = sent.delivered()
    results = msg["Authentication-Results"]
    assert results is not None and results.startswith("mx.e2e.test;")
    assert f"spf={result} smtp.mailfrom={mail_from}" in results
    assert f"spf={result} smtp.helo={HELO}" in results
    symbol = f"SPF_{result.upper()}"
    assert symbol in msg["X-Milterfilters-Symbols"]
    assert symbol in sent.decision()["symbols"]


def test_spf_fail_is_rejected_at_mail_from_when_configured(
    postfix_with_milter: StackFactory, spf_dns: DnsTestServer
) -> None:
    stack = postfix_with_milter(spf_config(spf_dns, 'fail = "reject"\n'))
    sent = stack.send("spf reject", mail_from=sender(), xclient={"ADDR": OTHER})
    mail = sent.transcript.mail
    assert mail is not None and mail.code == 550 and mail.text.startswith("5.7.23"), (
        sent.transcript.describe()
    )
    assert "spf-e2e.example" in mail.text
    sent.assert_not_delivered(grace=0.5)
    # the same configuration lets an authorized client through
    ok = stack.send("spf reject pass", mail_from=sender(), xclient={"ADDR": ALLOWED})
    assert ok.transcript.accepted, ok.transcript.describe()
    ok.delivered()


def test_silent_dns_tempfails_and_the_retried_mail_is_delivered(
    postfix_with_milter: StackFactory, spf_dns: DnsTestServer
) -> None:
    stack = postfix_with_milter(spf_config(spf_dns, 'temperror = "tempfail"\n'))
    spf_dns.fault("slow.spf-e2e.example", Fault.SILENCE)
    try:
        sent = stack.send("dns down", mail_from=sender("slow.spf-e2e.example"), xclient={"ADDR": ALLOWED})
        mail = sent.transcript.mail
        assert mail is not None and mail.code == 451 and mail.text.startswith("4.7.24"), (
            sent.transcript.describe()
        )
        sent.assert_not_delivered(grace=0.5)
    finally:
        spf_dns.faults.clear()
    again = sent.resend()
    assert again.transcript.accepted, again.transcript.describe()
    assert "spf=pass" in again.delivered()["Authentication-Results"]


def test_silent_dns_with_the_default_configuration_scores_and_delivers(
    postfix_with_milter: StackFactory, spf_dns: DnsTestServer
) -> None:
    stack = postfix_with_milter(spf_config(spf_dns))
    spf_dns.fault("slow.spf-e2e.example", Fault.SILENCE)
    try:
        sent = stack.send(
            "dns down scored", mail_from=sender("slow.spf-e2e.example"), xclient={"ADDR": ALLOWED}
        )
        assert sent.transcript.accepted, sent.transcript.describe()
        msg = sent.delivered()
    finally:
        spf_dns.faults.clear()
    assert "spf=temperror" in msg["Authentication-Results"]
    assert "SPF_TEMPERROR" in msg["X-Milterfilters-Symbols"]
