"""Security regressions: a From whose author domain cannot be read with certainty is refused
(or scored as a failure), never passed clean with dmarc=none/permerror (issue 10)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters.api import evaluate
from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.auth.dmarc_policy import read_author_domains
from milterfilters.core.verdict import Action
from tests.support.dnsserver import DnsTestServer
from tests.support.mailauth import auth_chain, authentication_results


def zone_records(key: PrivateKey) -> dict[str, list[tuple[str, str]]]:
    """What the ``dns`` fixture serves: a p=reject domain to impersonate."""
    return {"_dmarc.paypal.example": [("TXT", "v=DMARC1; p=reject")]}


UNREADABLE = {
    "encoded_word_hiding_the_address": b"=?utf-8?q?service=40paypal=2Eexample?=",
    "group_syntax_with_no_address": b"PayPal Security:;",
    "empty_value": b"",
    "comment_only_value": b"(service@paypal.example)",
    "fullwidth_at_sign": "service\uff20paypal.example".encode(),
    "unbalanced_quote": b'"service@paypal.example',
    "fold_inside_the_domain": b"service@pay\r\n pal.example",
    "comment_inside_the_domain": b"service@pay(x)pal.example",
    "bare_address_before_angle_address": b"service@paypal.example <x@attacker.example>",
    "lookalike_dot": "service@paypal\uff0eexample".encode(),
    "fullwidth_letters": "service@\uff50aypal.example".encode(),
    "domain_literal": b"service@[192.0.2.1]",
    "trailing_dot": b"service@paypal.example.",
}


def message(from_value: bytes) -> bytes:
    return b"From: " + from_value + b"\r\nTo: bob@test.example\r\nSubject: account\r\n\r\nVerify.\r\n"


def judge(dns: DnsTestServer, from_value: bytes, **dmarc: object):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, {"dmarc": dmarc})
    return evaluate(chain, message(from_value), client_ip="203.0.113.9", mail_from="x@attacker.example",
                    recipients=["bob@test.example"])  # fmt: skip


@pytest.mark.parametrize("attack", sorted(UNREADABLE))
def test_from_with_unreadable_author_domain_is_refused(dns: DnsTestServer, attack: str) -> None:
    out = judge(dns, UNREADABLE[attack])
    assert "DMARC_UNUSABLE_FROM" in out.decision.symbols, attack
    assert out.action is Action.REJECT and out.decision.reply.code == 550  # type: ignore[union-attr]
    assert not {"DMARC_NONE", "DMARC_PERMERROR", "DMARC_PASS"} & set(out.decision.symbols)


@pytest.mark.parametrize("attack", sorted(UNREADABLE))
def test_from_with_unreadable_author_domain_scores_as_a_failure_when_configured(
    dns: DnsTestServer, attack: str
) -> None:
    out = judge(dns, UNREADABLE[attack], unusable_from="score")
    assert out.action is not Action.REJECT
    unusable = [f for f in out.decision.findings if f.finding.symbol == "DMARC_UNUSABLE_FROM"]
    assert unusable and unusable[0].score > 0 and out.decision.score > 0
    assert "dmarc=permerror" in authentication_results(out.decision.headers)


@pytest.mark.parametrize(
    "value",
    [b"service@paypal.example", b"PayPal <service@paypal.example>", b"service@paypal\r\n .example",
     b"=?utf-8?q?PayPal?= <service@PAYPAL.example>", b"Team: service@paypal.example;"],
)  # fmt: skip
def test_readable_from_is_judged_by_its_policy_not_refused_as_unusable(
    dns: DnsTestServer, value: bytes
) -> None:
    out = judge(dns, value)
    assert "DMARC_UNUSABLE_FROM" not in out.decision.symbols
    assert "DMARC_FAIL_REJECT" in out.decision.symbols and out.action is Action.REJECT


_LDH_NAME = re.compile(r"([a-z0-9_-]+\.)*[a-z0-9_-]+")


@given(st.text(alphabet=st.sampled_from(list('ab.@<>"():;, \\=?\uff20\u3002\r\n\t-_é')), max_size=30))
@settings(max_examples=400, deadline=None)
def test_a_from_value_is_either_read_to_valid_domains_or_unusable(value: str) -> None:
    domains, problem = read_author_domains(value)
    if problem:
        assert domains == ()
    else:
        assert domains and all(_LDH_NAME.fullmatch(d) for d in domains), (value, domains)
