"""Security regressions: a trusted ARC sealer's dmarc=pass overrides a DMARC failure only for
the same author domain, and only when no untrusted hop sealed after it (issue 10)."""

from __future__ import annotations

import pytest

from milterfilters.api import evaluate
from milterfilters.auth.dkim_keys import generate_key
from milterfilters.auth.dmarc_filter import recorded_dmarc_pass
from milterfilters.core.verdict import Action
from tests.auth.arcchains import Sealer, seal
from tests.support.dnsserver import DnsTestServer, Zone
from tests.support.mailauth import auth_chain

LIST, RELAY, ATTACKER = "lists.example.org", "relay.example.net", "attacker.example"
POSTED = (
    b"From: Mallory <mallory@attacker.example>\r\nTo: team@lists.example.org\r\nSubject: invoice\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <9@attacker.example>\r\n\r\nHello list.\r\n"
)
GENUINE = POSTED.replace(b"mallory@attacker.example", b"alice@example.com")


@pytest.fixture(scope="module")
def hops() -> dict[str, Sealer]:
    return {name: Sealer(name, generate_key("rsa", 1024)[1]) for name in (LIST, RELAY, ATTACKER)}


@pytest.fixture
def dns(dns_server: DnsTestServer, hops: dict[str, Sealer]) -> DnsTestServer:
    zone = {s.record_name: [("TXT", s.key.public_record)] for s in hops.values()}
    zone["_dmarc.example.com"] = [("TXT", "v=DMARC1; p=reject")]
    dns_server.zone = Zone(zone)
    return dns_server


def judge(dns: DnsTestServer, message: bytes, trusted: tuple[str, ...] = (LIST,)):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, {"dkim": {}, "dmarc": {"trusted_arc_sealers": list(trusted)}})
    return evaluate(chain, message, client_ip="198.51.100.7", mail_from="x@attacker.example",
                    recipients=["bob@test.example"])  # fmt: skip


def test_attacker_reseal_after_trusted_list_with_rewritten_from_gets_no_arc_override(
    dns: DnsTestServer, hops: dict[str, Sealer]
) -> None:
    # the trusted list vouched for mallory@attacker.example; the attacker then rewrote From to
    # a p=reject domain and the body, and sealed the result with a valid seal of their own
    listed = seal(POSTED, hops[LIST], results="dmarc=pass header.from=attacker.example")
    rewritten = listed.replace(b"mallory@attacker.example", b"ceo@example.com").replace(
        b"Hello list.", b"Pay."
    )
    forged = seal(rewritten, hops[ATTACKER], cv="pass", results="dmarc=fail header.from=example.com")
    out = judge(dns, forged)
    assert "ARC_PASS" in out.decision.symbols  # the chain itself is valid
    assert "DMARC_ARC_OVERRIDE" not in out.decision.symbols
    assert "DMARC_FAIL_REJECT" in out.decision.symbols and out.action is Action.REJECT


def test_trusted_sealer_vouching_for_another_from_domain_gives_no_arc_override(
    dns: DnsTestServer, hops: dict[str, Sealer]
) -> None:
    message = seal(GENUINE, hops[LIST], results="dmarc=pass header.from=attacker.example")
    out = judge(dns, message)
    assert "DMARC_ARC_OVERRIDE" not in out.decision.symbols and out.action is Action.REJECT


def test_untrusted_hop_after_trusted_sealer_gives_no_arc_override(
    dns: DnsTestServer, hops: dict[str, Sealer]
) -> None:
    listed = seal(GENUINE, hops[LIST], results="dmarc=pass header.from=example.com")
    relayed = seal(listed, hops[RELAY], cv="pass", results="dmarc=fail header.from=example.com")
    out = judge(dns, relayed)
    assert "ARC_PASS" in out.decision.symbols
    assert "DMARC_ARC_OVERRIDE" not in out.decision.symbols and out.action is Action.REJECT
    # the same chain with both hops trusted: the list's record counts
    out = judge(dns, relayed, trusted=(LIST, RELAY))
    assert "DMARC_ARC_OVERRIDE" in out.decision.symbols and out.action is Action.ACCEPT


def test_genuine_forwarding_through_the_trusted_list_still_overrides(
    dns: DnsTestServer, hops: dict[str, Sealer]
) -> None:
    message = seal(GENUINE, hops[LIST], results="dmarc=pass header.from=Example.COM.")
    out = judge(dns, message)
    assert "DMARC_ARC_OVERRIDE" in out.decision.symbols and out.action is Action.ACCEPT


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        ("lists.example.org; dmarc=pass header.from=example.com", True),
        ('lists.example.org; dmarc=pass header.from="example.com"', True),
        ("lists.example.org; dmarc=pass header.from=attacker.example", False),
        ("lists.example.org; dmarc=pass header.from=sub.example.com", False),
        ("lists.example.org; dmarc=pass", False),
        ("lists.example.org; dmarc=pass header.from=example.com; dmarc=fail header.from=example.com", False),
        ("lists.example.org; dkim=pass header.d=example.com", False),
        ("not an authentication-results value", False),
    ],
)
def test_recorded_dmarc_pass_is_for_exactly_this_author_domain(recorded: str, expected: bool) -> None:
    assert recorded_dmarc_pass(recorded, "example.com") is expected
