"""Whatever a client sends as MAIL FROM and HELO, the SPF filter answers with a result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milterfilters.api import default_services
from milterfilters.auth.authres_forgery import authserv_id_of
from milterfilters.config import config_from_dict
from milterfilters.core.authresults import render_authentication_results
from milterfilters.core.context import Connection, Context, Envelope
from milterfilters.core.services import Services
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import HeaderAdd
from milterfilters.dns import Resolver
from milterfilters.spf.filter import RESULTS, SpfFilter
from tests.support.dnsserver import DnsTestServer, Zone

SPF_SYMBOLS = {f"SPF_{r.upper()}" for r in RESULTS} | {f"SPF_HELO_{r.upper()}" for r in RESULTS}

#: SMTP-ish text: printable ASCII and some UTF-8 (SMTPUTF8), with the characters that matter
text = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF) | st.sampled_from('@.[]:%{}-_\\"<> '),
    max_size=80,
)
domains = st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}\.?", fullmatch=True)
senders = st.one_of(text, st.builds(lambda local, domain: f"{local}@{domain}", text, domains), st.just(""))
ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


@pytest.fixture(scope="module")
def spf_filter() -> Iterator[SpfFilter]:
    zone = Zone({"example.com": [("TXT", "v=spf1 a mx ptr exists:%{l}.%{d} include:%{h} -all")]})
    with DnsTestServer(zone) as server:
        config = config_from_dict(
            {
                "spf": {"enabled": True, "trusted_networks": [], "received_spf_header": True},
                "relay": {"trusted_networks": []},
            }
        )
        resolver = Resolver([server.address], timeout=0.5)
        services = default_services(config, Services(resolver_factory=lambda: resolver))
        yield SpfFilter(config.filter("spf").options, services)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ip=ips, sender=senders, helo=st.one_of(text, domains))
def test_any_sender_and_helo_give_a_result(spf_filter: SpfFilter, ip: str, sender: str, helo: str) -> None:
    ctx = Context(
        stage=Stage.MAIL,
        connection=Connection(client_address=ip),
        helo=helo,
        envelope=Envelope(mail_from=sender),
    )
    verdict = spf_filter.mail(ctx)
    if verdict is None:  # only loopback-like clients are skipped, and none are trusted here
        pytest.fail("no verdict")
    symbols = [f.symbol for f in verdict.findings]
    assert symbols and set(symbols) <= SPF_SYMBOLS
    assert symbols[0].startswith("SPF_") and not symbols[0].startswith("SPF_HELO_")
    header = render_authentication_results("mx.test", verdict.auth_results)
    HeaderAdd("Authentication-Results", header)  # raises on a bare line break
    assert authserv_id_of(header) == "mx.test"
    for r in verdict.auth_results:
        assert f"spf={r.result}" in header
