"""Issue 10: SPF reads MAIL FROM and HELO through the RFC 5321 parser, and what it writes
(Authentication-Results, Received-SPF) reads back as exactly what it computed.

Everything is served by the loopback DNS server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milterfilters.api import Outcome, default_services
from milterfilters.auth.dmarc_policy import authenticated_domains
from milterfilters.config import config_from_dict
from milterfilters.core.authresults import printable, render_authentication_results
from milterfilters.core.context import Connection, Context, Envelope
from milterfilters.core.services import Services
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import Action, HeaderAdd, Verdict
from milterfilters.dns import Resolver
from milterfilters.mail.identity import parse_identity
from milterfilters.spf.filter import SpfFilter
from milterfilters.spf.pyspf_adapter import check_host
from milterfilters.spf.received_spf import explanation, received_spf_pairs
from tests.spf.test_spf_filter import BAD_IP, GOOD_IP, chain_for, run
from tests.support.dnsserver import DnsTestServer, Zone
from tests.support.written_headers import (
    assert_folded,
    assert_reads_back,
    parse_received_spf,
    parsed_authentication_results,
)

ZONE = {
    "paypal.com": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "y": [("TXT", "v=spf1 +all")],
    "example.com": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "mx.example.com": [("TXT", "v=spf1 a -all"), ("A", GOOD_IP)],
    "broken.test": [("TXT", "v=spf1 frobnicate) dkim=pass (header.d=paypal.com -all")],
}


@pytest.fixture
def zone_server(dns_server: DnsTestServer) -> DnsTestServer:
    dns_server.zone = Zone(ZONE)
    return dns_server


def header_values(outcome: Outcome, name: str) -> list[str]:
    return [h.value for h in outcome.decision.added_headers if h.name == name]


def methods(value: str) -> list[str]:
    return [entry[0] for entry in parsed_authentication_results(value)[1]]


# -- regressions named for the attacks ------------------------------------------------------------


def test_spf_bypass_with_at_sign_in_quoted_local_part_is_rejected(zone_server: DnsTestServer) -> None:
    """``MAIL FROM:<"x@y"@paypal.com>``: pyspf split at the first ``@`` and checked ``y``."""
    outcome = run(chain_for(zone_server, fail="reject"), '<"x@y"@paypal.com>', ip=BAD_IP)
    assert outcome.action is Action.REJECT and outcome.stage is Stage.MAIL
    reply = outcome.decision.reply
    assert reply is not None and (reply.code, reply.enhanced) == (550, "5.7.23")
    assert "paypal.com" in reply.text
    assert "SPF_FAIL" in outcome.decision.symbols
    assert zone_server.count("y") == 0


def test_spf_bypass_with_at_sign_in_quoted_local_part_passes_only_for_the_real_domain(
    zone_server: DnsTestServer,
) -> None:
    outcome = run(chain_for(zone_server, fail="reject"), '"x@y"@paypal.com', ip=GOOD_IP)
    assert outcome.action is Action.ACCEPT and "SPF_PASS" in outcome.decision.symbols
    (value,) = header_values(outcome, "Authentication-Results")
    _, entries = parsed_authentication_results(value)
    assert entries[0][:2] == ("spf", "pass") and entries[0][3] == {"smtp.mailfrom": "paypal.com"}


def test_dmarc_reads_the_parsed_domain_as_spf_authenticated(zone_server: DnsTestServer) -> None:
    """DMARC's SPF-authenticated domain is the parsed MAIL FROM domain, not ``y``."""
    verdict = spf_verdict(zone_server, '"x@y"@paypal.com', "mx.example.com", GOOD_IP)  # HELO passes too
    ctx = Context(
        stage=Stage.EOM, envelope=Envelope(mail_from='"x@y"@paypal.com'), auth_results=verdict.auth_results
    )
    assert authenticated_domains(ctx).spf == ("paypal.com",)


def test_authentication_results_injection_through_the_local_part(zone_server: DnsTestServer) -> None:
    sender = '"a; dkim=pass header.d=paypal.com; dmarc=pass header.from=paypal.com"@example.com'
    outcome = run(chain_for(zone_server), sender, ip=BAD_IP)
    (value,) = header_values(outcome, "Authentication-Results")
    assert methods(value) == ["spf", "spf"]
    assert "dkim" not in value and "dmarc" not in value


def test_authentication_results_injection_through_the_helo_with_the_null_sender(
    zone_server: DnsTestServer,
) -> None:
    helo = "x; dkim=pass header.d=paypal.com; dmarc=pass header.from=paypal.com"
    outcome = run(chain_for(zone_server, received_spf_header=True), "", helo=helo)
    assert [s for s in outcome.decision.symbols if s.startswith("SPF_")] == ["SPF_NONE"]
    assert zone_server.count() == 0  # a HELO that is no domain name is no SPF identity
    assert header_values(outcome, "Authentication-Results") == []
    assert header_values(outcome, "Received-SPF") == []


def test_authentication_results_injection_through_the_helo_with_a_sender(zone_server: DnsTestServer) -> None:
    helo = "x; dkim=pass header.d=paypal.com"
    outcome = run(chain_for(zone_server, received_spf_header=True), "user@example.com", helo=helo)
    symbols = [s for s in outcome.decision.symbols if s.startswith("SPF_")]
    assert symbols == ["SPF_PASS", "SPF_HELO_NONE"]
    (value,) = header_values(outcome, "Authentication-Results")
    assert methods(value) == ["spf"]
    (received,) = header_values(outcome, "Received-SPF")
    assert dict(parse_received_spf(received)[2])["helo"] == helo


def test_received_spf_comment_injection_through_a_dns_record(zone_server: DnsTestServer) -> None:
    """A TXT record whose text closes the comment and adds key-value pairs of its own."""
    outcome = run(chain_for(zone_server, received_spf_header=True), "user@broken.test", helo="mx.example.com")
    (received,) = header_values(outcome, "Received-SPF")
    result, comment, pairs = parse_received_spf(received)
    assert result == "permerror"
    assert comment == "mx.test: permanent error in processing domain of broken.test: Unknown mechanism found"
    assert [k for k, _ in pairs] == ["client-ip", "envelope-from", "helo", "receiver", "problem", "identity"]
    assert dict(pairs)["problem"] == "frobnicate)"
    assert dict(pairs)["envelope-from"] == "user@broken.test"
    (value,) = header_values(outcome, "Authentication-Results")
    assert methods(value) == ["spf", "spf"]


def test_unparsable_mail_from_is_still_checked_against_its_domain(zone_server: DnsTestServer) -> None:
    """A path the parser refuses (an MTA without strict syntax may pass it) cannot dodge a reject."""
    verdict = spf_verdict(zone_server, "x y@paypal.com", "mx.example.com", BAD_IP, fail="reject")
    assert verdict.action is Action.REJECT and verdict.findings[0].symbol == "SPF_FAIL"


@pytest.mark.parametrize(
    ("helo", "domain"),
    [
        ("MX.Example.COM.", "mx.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("[192.0.2.1]", None),
        ("192.0.2.1", None),
        ("localhost", None),
        ("a b.example.com", None),
        ("a_b.example.com", None),
        ("x.example.com\r\nX-Injected: 1", None),
    ],
)
def test_helo_is_an_spf_identity_only_when_a_domain_name(helo: str, domain: str | None) -> None:
    identity = parse_identity("", helo)
    assert identity.helo == domain
    assert (identity.spf_sender.domain if identity.spf_sender else None) == domain


def test_empty_local_part_is_checked_as_postmaster() -> None:
    identity = parse_identity('""@example.com', "mx.example.com")
    assert identity.spf_sender is not None and identity.spf_sender.sender == "postmaster@example.com"


# -- properties: hostile identities and DNS texts ---------------------------------------------------

hostile = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF)
    | st.sampled_from(list('@;=()"\\ .,:') + ["é", "\u2028"]),
    min_size=0,
    max_size=30,
)
quoted_local_parts = hostile.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"')
senders = st.one_of(
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        quoted_local_parts,
        st.sampled_from(["example.com", "t.test"]),
    ),
    st.builds(lambda local: f"{local}@example.com", hostile),
    st.just(""),
)
helos = st.one_of(
    hostile,
    hostile.map(lambda t: f"mx.example.com\r\n{t}"),
    st.sampled_from(["mx.example.com", "[192.0.2.7]", "t.test"]),
)
txt_texts = st.builds(lambda mech: f"v=spf1 {mech} -all exp=exp.t.test", hostile)


@pytest.fixture(scope="module")
def module_dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


def spf_filter(server: DnsTestServer, **options: Any) -> tuple[SpfFilter, Resolver]:
    config = config_from_dict(
        {
            "milter": {"authserv_id": "mx.test"},
            "spf": {"enabled": True, "trusted_networks": [], "received_spf_header": True, **options},
        }
    )
    resolver = Resolver([server.address], timeout=0.5, cache_size=0)
    services = default_services(config, Services(resolver_factory=lambda: resolver))
    return SpfFilter(config.filter("spf").options, services), resolver


def spf_verdict(server: DnsTestServer, sender: str, helo: str, ip: str, **options: Any) -> Verdict:
    ctx = Context(
        stage=Stage.MAIL,
        connection=Connection(client_address=ip),
        helo=helo,
        envelope=Envelope(mail_from=sender),
    )
    verdict = spf_filter(server, **options)[0].mail(ctx)
    assert verdict is not None
    return verdict


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sender=senders,
    helo=helos,
    txt=txt_texts,
    exp=hostile,
    ip=st.sampled_from([GOOD_IP, BAD_IP, "2001:db8::1"]),
)
def test_spf_headers_read_back_as_exactly_what_was_computed(
    module_dns: DnsTestServer, sender: str, helo: str, txt: str, exp: str, ip: str
) -> None:
    module_dns.zone = Zone({"t.test": [("TXT", txt)], "exp.t.test": [("TXT", exp or "x")], **ZONE})
    verdict = spf_verdict(module_dns, sender, helo, ip)
    identity = parse_identity(sender, helo)
    checked = identity.spf_sender
    for r in verdict.auth_results:  # the domain named is the parsed one, never raw text
        (value,) = [v for _, v in r.properties]
        assert value.rpartition("@")[2] in {checked.domain if checked else None, identity.helo}
    if verdict.auth_results:
        value = render_authentication_results("mx.test", verdict.auth_results)
        assert_reads_back(value, "mx.test", verdict.auth_results)
        assert_folded("Authentication-Results", value)
    headers = [h for h in verdict.headers if isinstance(h, HeaderAdd) and h.name == "Received-SPF"]
    assert len(headers) == (1 if checked else 0)
    if checked is None:
        return
    # the parts, computed again straight from check_host(), against what the filter wrote
    main = check_host(
        ip, checked, identity.helo or "unknown", spf_filter(module_dns)[1].budget(), receiver="mx.test"
    )
    assert_folded("Received-SPF", headers[0].value)
    result, comment, pairs = parse_received_spf(headers[0].value)
    assert result == main.result
    assert comment == printable(f"mx.test: {explanation(main, ip)}")
    assert pairs == [(k, printable(v)) for k, v in received_spf_pairs(main, ip, helo, "mx.test")]
