"""The SPF filter through the chain, against a real DNS server on loopback."""

from __future__ import annotations

import threading
import time
import tomllib
from typing import Any

import pytest
import spf as pyspf
from dnslib import QTYPE, RR, TXT

from milterfilters.api import Outcome, build_chain, evaluate
from milterfilters.config import config_from_dict, render_config
from milterfilters.core.chain import Chain
from milterfilters.core.schema import ConfigError
from milterfilters.core.verdict import Action
from tests.support.dnsserver import DnsTestServer, Fault, Reply, Zone

MESSAGE = b"From: user@example.com\r\nTo: rcpt@dest.test\r\nSubject: hi\r\n\r\nhello\r\n"
GOOD_IP = "192.0.2.7"
BAD_IP = "198.51.100.9"

ZONE = {
    "example.com": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "sub.example.com": [("TXT", "v=spf1 -all")],
    "other.test": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "soft.test": [("TXT", "v=spf1 ~all")],
    "broken.test": [("TXT", "v=spf1 frobnicate -all")],
    "explained.test": [("TXT", "v=spf1 -all exp=why.explained.test")],
    "why.explained.test": [("TXT", "%{d} mail comes from %{i}? No.")],
    "chain.test": [("TXT", "v=spf1 include:a.chain.test -all")],
    "a.chain.test": [("TXT", "v=spf1 include:b.chain.test -all")],
    "b.chain.test": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "mx.example.com": [("TXT", "v=spf1 a -all"), ("A", GOOD_IP)],
}


@pytest.fixture
def zone_server(dns_server: DnsTestServer) -> DnsTestServer:
    dns_server.zone = Zone(ZONE)
    return dns_server


def chain_for(
    server: DnsTestServer, timeout: float = 1.0, budget: int = 250, cache_size: int = 100, **spf: Any
) -> Chain:
    spf.setdefault("trusted_networks", [])
    dns = {
        "nameservers": [server.address],
        "timeout": timeout,
        "lookup_budget": budget,
        "cache_size": cache_size,
    }
    config = config_from_dict(
        {
            "dns": dns,
            "milter": {"authserv_id": "mx.test"},
            "spf": {"enabled": True, **spf},
            "gtube": {"enabled": False},
            "size": {"enabled": False},
        }
    )
    return build_chain(config)


def run(chain: Chain, sender: str, ip: str = GOOD_IP, helo: str = "mx.example.com", **kw: Any) -> Outcome:
    kw.setdefault("recipients", ["rcpt@dest.test"])
    return evaluate(chain, MESSAGE, client_ip=ip, helo=helo, mail_from=sender, **kw)


def symbols(outcome: Outcome) -> list[str]:
    return [s for s in outcome.decision.symbols if s.startswith("SPF_")]


def auth_results(outcome: Outcome) -> str:
    values = [h.value for h in outcome.decision.added_headers if h.name == "Authentication-Results"]
    assert len(values) == 1
    return values[0]


def test_pass_for_both_identities_in_authentication_results(zone_server: DnsTestServer) -> None:
    outcome = run(chain_for(zone_server), "user@example.com")
    assert outcome.action is Action.ACCEPT
    assert symbols(outcome) == ["SPF_PASS", "SPF_HELO_PASS"]
    header = auth_results(outcome)
    assert header.startswith("mx.test;")
    assert "spf=pass smtp.mailfrom=user@example.com" in header
    assert "spf=pass smtp.helo=mx.example.com" in header


def test_fail_is_scored_by_default_and_mail_delivered(zone_server: DnsTestServer) -> None:
    outcome = run(chain_for(zone_server), "user@example.com", ip=BAD_IP)
    assert outcome.action is Action.ACCEPT
    assert symbols(outcome) == ["SPF_FAIL", "SPF_HELO_FAIL"]
    assert outcome.decision.score == pytest.approx(3.0 + 1.0)
    assert "spf=fail smtp.mailfrom=user@example.com" in auth_results(outcome)


def test_fail_rejected_at_mail_when_configured(zone_server: DnsTestServer) -> None:
    outcome = run(chain_for(zone_server, fail="reject"), "user@explained.test", ip=BAD_IP)
    assert outcome.action is Action.REJECT and outcome.stage.value == "mail"
    reply = outcome.decision.reply
    assert reply is not None and (reply.code, reply.enhanced) == (550, "5.7.23")
    assert reply.text == f"SPF fail for explained.test: explained.test mail comes from {BAD_IP}? No."


def test_fail_rejected_at_each_rcpt_when_configured(zone_server: DnsTestServer) -> None:
    chain = chain_for(zone_server, fail="reject", reject_at="rcpt")
    outcome = run(chain, "user@example.com", ip=BAD_IP, recipients=["a@dest.test", "b@dest.test"])
    assert outcome.stage.value == "rcpt"
    assert [(r.action, r.decision.reply and r.decision.reply.enhanced) for r in outcome.recipients] == [
        (Action.REJECT, "5.7.23"),
        (Action.REJECT, "5.7.23"),
    ]
    assert run(chain, "user@example.com").action is Action.ACCEPT


def test_per_domain_override_wins_for_the_domain_and_its_subdomains(zone_server: DnsTestServer) -> None:
    chain = chain_for(zone_server, fail="reject", domains={"example.com": {"fail": "score"}})
    assert run(chain, "user@example.com", ip=BAD_IP).action is Action.ACCEPT
    assert run(chain, "user@sub.example.com", ip=BAD_IP).action is Action.ACCEPT
    assert run(chain, "user@other.test", ip=BAD_IP).action is Action.REJECT


def test_softfail_and_permerror_actions(zone_server: DnsTestServer) -> None:
    chain = chain_for(zone_server, softfail="reject", permerror="reject")
    soft = run(chain, "user@soft.test")
    assert soft.decision.reply is not None and soft.decision.reply.enhanced == "5.7.23"
    broken = run(chain, "user@broken.test")
    assert "SPF_PERMERROR" in broken.decision.symbols
    assert broken.decision.reply is not None and str(broken.decision.reply).startswith("550 5.7.24 ")


def test_silent_dns_costs_at_most_the_timeout_and_mail_is_scored(zone_server: DnsTestServer) -> None:
    zone_server.fault("example.com", Fault.SILENCE)
    zone_server.fault("mx.example.com", Fault.SILENCE)
    chain = chain_for(zone_server, timeout=0.8)
    start = time.monotonic()
    outcome = run(chain, "user@example.com")
    elapsed = time.monotonic() - start
    assert elapsed < 1.5  # one timeout per message (0.8 s), not one per identity (1.6 s)
    assert outcome.action is Action.ACCEPT
    assert symbols(outcome) == ["SPF_TEMPERROR", "SPF_HELO_TEMPERROR"]
    assert "spf=temperror" in auth_results(outcome)
    metrics = chain.metrics
    assert metrics.get("spf_results_total", identity="mailfrom", result="temperror") == 1
    assert metrics.get("dns_timeouts_total", type="TXT") == 1


def test_silent_dns_tempfails_when_configured(zone_server: DnsTestServer) -> None:
    zone_server.fault("example.com", Fault.SILENCE)
    outcome = run(chain_for(zone_server, timeout=0.3, temperror="tempfail"), "user@example.com")
    assert outcome.action is Action.TEMPFAIL
    assert outcome.decision.reply is not None and str(outcome.decision.reply).startswith("451 4.7.24 ")


def test_servfail_is_temperror(zone_server: DnsTestServer) -> None:
    zone_server.fault("example.com", Fault.SERVFAIL)
    assert symbols(run(chain_for(zone_server), "user@example.com"))[0] == "SPF_TEMPERROR"


def test_lookup_budget_exhaustion_is_temperror(zone_server: DnsTestServer) -> None:
    assert symbols(run(chain_for(zone_server, budget=3), "user@chain.test"))[0] == "SPF_PASS"
    assert symbols(run(chain_for(zone_server, budget=2), "user@chain.test"))[0] == "SPF_TEMPERROR"


def test_malformed_answer_is_temperror_not_a_crash(dns_server: DnsTestServer) -> None:
    class ZeroStringTxt(Zone):
        def lookup(self, qname: str, qtype: str) -> Reply:
            return Reply(answer=(RR(qname, QTYPE.TXT, rdata=TXT([]), ttl=60),))

    dns_server.zone = ZeroStringTxt()
    outcome = run(chain_for(dns_server, check_helo=False), "user@example.com")
    assert symbols(outcome) == ["SPF_TEMPERROR"]
    assert outcome.action is Action.ACCEPT


def test_null_sender_checks_postmaster_at_helo(zone_server: DnsTestServer) -> None:
    outcome = run(chain_for(zone_server), "")
    assert symbols(outcome) == ["SPF_PASS"]
    assert "spf=pass smtp.helo=mx.example.com" in auth_results(outcome)
    assert zone_server.count("mx.example.com", "TXT") == 1


def test_helo_address_literal_is_not_checked(zone_server: DnsTestServer) -> None:
    outcome = run(chain_for(zone_server), "user@example.com", helo=f"[{GOOD_IP}]")
    assert symbols(outcome) == ["SPF_PASS", "SPF_HELO_NONE"]
    assert zone_server.count() == 1


@pytest.mark.parametrize(
    ("options", "kw"),
    [
        ({}, {"auth_user": "alice"}),
        ({"trusted_forwarders": ["198.51.100.0/24"]}, {}),
        ({"trusted_networks": ["198.51.100.9"]}, {}),
    ],
    ids=["authenticated", "trusted-forwarder", "trusted-network"],
)
def test_skipped_clients_cause_no_lookups(
    zone_server: DnsTestServer, options: dict[str, Any], kw: dict[str, Any]
) -> None:
    outcome = run(chain_for(zone_server, **options), "user@example.com", ip=BAD_IP, **kw)
    assert symbols(outcome) == []
    assert zone_server.count() == 0


def test_relay_trusted_networks_skip_spf(zone_server: DnsTestServer) -> None:
    config = config_from_dict(
        {
            "dns": {"nameservers": [zone_server.address]},
            "relay": {"trusted_networks": ["198.51.100.0/24"]},
            "spf": {"enabled": True, "trusted_networks": []},
        }
    )
    chain = build_chain(config)
    assert symbols(run(chain, "user@example.com", ip=BAD_IP)) == []
    assert zone_server.count() == 0
    assert symbols(run(chain, "user@example.com", ip=GOOD_IP)) == ["SPF_PASS", "SPF_HELO_PASS"]


def test_loopback_is_trusted_by_default(zone_server: DnsTestServer) -> None:
    config = config_from_dict(
        {"dns": {"nameservers": [zone_server.address]}, "spf": {"enabled": True}, "gtube": {"enabled": False}}
    )
    outcome = run(build_chain(config), "user@example.com", ip="127.0.0.1")
    assert symbols(outcome) == []
    assert zone_server.count() == 0


def test_received_spf_header(zone_server: DnsTestServer) -> None:
    outcome = run(chain_for(zone_server, received_spf_header=True), "user@example.com", ip=BAD_IP)
    values = [h.value.replace("\n", "") for h in outcome.decision.added_headers if h.name == "Received-SPF"]
    assert len(values) == 1
    assert values[0].startswith("Fail (mx.test: domain of example.com does not designate 198.51.100.9")
    assert 'envelope-from="user@example.com"' in values[0] and values[0].endswith("identity=mailfrom")


def test_received_spf_header_survives_a_carriage_return_in_helo(zone_server: DnsTestServer) -> None:
    # a bare CR in HELO reached the header and made the filter fail (451 for every message)
    outcome = run(chain_for(zone_server, received_spf_header=True), "user@example.com", helo="a\rb")
    assert not outcome.decision.errors
    (value,) = [h.value for h in outcome.decision.added_headers if h.name == "Received-SPF"]
    assert "\r" not in value and "identity=mailfrom" in value


def test_concurrent_checks_use_their_own_resolver(zone_server: DnsTestServer) -> None:
    """Two chains whose resolvers see different DNS, judged from many threads at once
    (uncached, so that every check waits on the network while others run)."""
    # The same names with different data: a check that asked the wrong server would
    # see the other verdict for its second lookup.
    permissive = {
        "example.com": [("TXT", "v=spf1 include:inc.example.com -all")],
        "inc.example.com": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    }
    strict = {**permissive, "inc.example.com": [("TXT", "v=spf1 -all")]}
    zone_server.zone = Zone(permissive)
    with DnsTestServer(Zone(strict)) as strict_server:
        chains = {
            "SPF_PASS": chain_for(zone_server, cache_size=0, check_helo=False),
            "SPF_FAIL": chain_for(strict_server, cache_size=0, check_helo=False),
        }
        wrong: list[tuple[str, list[str]]] = []

        def work(k: int) -> None:
            for i in range(16):
                expected = ("SPF_PASS", "SPF_FAIL")[(i + k) % 2]
                got = symbols(run(chains[expected], "user@example.com"))
                if got != [expected]:
                    wrong.append((expected, got))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wrong == []


def test_pyspf_outside_a_check_never_reaches_the_system_resolver() -> None:
    with pytest.raises(pyspf.TempError):
        pyspf.DNSLookup("example.com", "TXT")


@pytest.mark.parametrize(
    "spf",
    [
        {"trusted_forwarders": ["not-an-ip"]},
        {"domains": {"not a domain": {"fail": "reject"}}},
        {"temperror": "reject"},
        {"fail": "tempfail"},
        {"reject_at": "data"},
    ],
)
def test_bad_options_are_config_errors(spf: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        config_from_dict({"spf": spf})


def test_effective_configuration_round_trips_with_domain_overrides() -> None:
    data = {"spf": {"enabled": True, "fail": "reject", "domains": {"example.com": {"fail": "score"}}}}
    config = config_from_dict(data)
    rendered = config_from_dict(tomllib.loads(render_config(config)))
    assert rendered.filter("spf").options == config.filter("spf").options
