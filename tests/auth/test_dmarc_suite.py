"""DMARC conformance (RFC 7489), table-driven: record parsing, policy discovery, identifier
alignment, policy application and From edge cases. Each row is named for the rule and the
section it checks. Our own cases, written for the rules that postalsys/mailauth
(``test/dmarc/``), ValiMail/authentication-headers and OpenDMARC (``libopendmarc/tests``)
exercise; no data is copied from them. Where the RFC leaves a reading open, docs/dkim.md
says which one we took."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dkim
import pytest
from hypothesis import given
from hypothesis import strategies as st

from milterfilters.api import evaluate as evaluate_message
from milterfilters.auth import dmarc_policy as dmarc
from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.auth.dmarc_policy import DmarcRecord, DmarcRecordError, Identifiers, is_aligned
from milterfilters.core.verdict import Action
from milterfilters.dns import Resolver
from tests.support.dnsserver import DnsTestServer, Fault, Zone
from tests.support.mailauth import auth_chain

# -- record parsing (6.3, 6.4, 6.6.3) -------------------------------------------------------

R = DmarcRecord
REJECT = R("reject")
RECORDS: list[tuple[str, str, DmarcRecord | None]] = [
    ("6.4 minimal record", "v=DMARC1; p=none", R("none")),
    ("6.4 trailing separator", "v=DMARC1; p=quarantine;", R("quarantine")),
    ("6.4 all tags",
     "v=DMARC1; p=quarantine; sp=reject; pct=50; adkim=s; aspf=s; fo=1; ri=3600; "
     "rua=mailto:a@example.com; ruf=mailto:f@example.com; rf=afrf",
     R("quarantine", "reject", 50, True, True)),
    ("6.3 tags after v in any order",
     "v=DMARC1; aspf=s; pct=10; sp=none; p=reject", R("reject", "none", 10, False, True)),
    ("6.3 no space after separators", "v=DMARC1;p=reject;adkim=s", R("reject", dkim_strict=True)),
    ("6.4 whitespace around tags and =", "v = DMARC1 ;\tp = reject ; pct = 30 ", R("reject", percent=30)),
    ("6.4 tag names are case-insensitive", "V=DMARC1; P=reject; ADKIM=s", R("reject", dkim_strict=True)),
    ("6.4 policy values are case-insensitive",
     "v=DMARC1; p=Reject; sp=QUARANTINE", R("reject", "quarantine")),
    ("6.3 unknown tags ignored", "v=DMARC1; p=reject; foo=bar; np=none", REJECT),
    ("6.3 a part without = ignored", "v=DMARC1; p=reject; tagonly", REJECT),
    ("6.3 empty parts ignored", "v=DMARC1;; p=reject ;;", REJECT),
    ("6.6.3 invalid p without rua: no policy", "v=DMARC1; p=bob", None),
    ("6.6.3 abbreviated p is invalid", "v=DMARC1; p=n", None),
    ("6.6.3 missing p without rua: no policy", "v=DMARC1; pct=100", None),
    ("6.6.3 invalid p with rua: p=none", "v=DMARC1; p=bob; rua=mailto:d@example.com", R("none")),
    ("6.6.3 missing p with rua: p=none", "v=DMARC1; rua=mailto:d@example.com", R("none")),
    ("6.6.3 invalid sp with rua: p=none", "v=DMARC1; p=reject; sp=bob; rua=mailto:d@example.com", R("none")),
    ("6.6.3 invalid sp without rua: no policy", "v=DMARC1; p=reject; sp=bob", None),
    ("6.6.3 rua without a valid URI does not rescue", "v=DMARC1; p=bob; rua=nobody", None),
    ("6.6.3 one valid URI among several rescues",
     "v=DMARC1; p=bob; rua=junk, mailto:d@example.com", R("none")),
    ("6.4 pct lower bound", "v=DMARC1; p=reject; pct=0", R("reject", percent=0)),
    ("6.4 pct upper bound", "v=DMARC1; p=reject; pct=100", REJECT),
    ("6.3 pct over 100 takes the default", "v=DMARC1; p=reject; pct=150", REJECT),
    ("6.3 negative pct takes the default", "v=DMARC1; p=reject; pct=-1", REJECT),
    ("6.3 non-numeric pct takes the default", "v=DMARC1; p=reject; pct=half", REJECT),
    ("6.3 fractional pct takes the default", "v=DMARC1; p=reject; pct=50.5", REJECT),
    ("6.4 adkim=r and aspf=r", "v=DMARC1; p=reject; adkim=r; aspf=r", REJECT),
    ("6.4 aspf=S upper case", "v=DMARC1; p=reject; aspf=S", R("reject", spf_strict=True)),
    ("6.3 invalid adkim takes relaxed", "v=DMARC1; p=reject; adkim=x", REJECT),
    ("6.3 invalid aspf takes relaxed", "v=DMARC1; p=reject; aspf=strict", REJECT),
    ("6.3 duplicate tag: the first counts", "v=DMARC1; p=reject; p=none", REJECT),
    ("6.3 v not first: not a record", "p=reject; v=DMARC1", None),
    ("6.4 v value is case-sensitive", "v=dmarc1; p=reject", None),
    ("6.4 v value must match exactly", "v=DMARC1x; p=reject", None),
    ("6.4 other version", "v=DMARC2; p=reject", None),
    ("6.3 empty text", "", None),
    ("6.3 SPF record is not DMARC", "v=spf1 -all", None),
]  # fmt: skip


@pytest.mark.parametrize(("label", "text", "expected"), RECORDS, ids=[c[0] for c in RECORDS])
def test_record_parsing(label: str, text: str, expected: DmarcRecord | None) -> None:
    if expected is None:
        with pytest.raises(DmarcRecordError):
            dmarc.parse_record(text)
    else:
        assert dmarc.parse_record(text) == expected, label


@given(
    st.sampled_from(["pct", "adkim", "aspf", "fo", "ri", "rf", "junk", ""]),
    st.text(alphabet=st.characters(blacklist_characters=";", blacklist_categories=("Cs",)), max_size=12),
)
def test_no_optional_tag_can_drop_the_policy(tag: str, value: str) -> None:
    """RFC 7489 6.3: a syntax error after v and p takes a default or is ignored; it never
    turns p=reject into no policy at all (nor changes p)."""
    record = dmarc.parse_record(f"v=DMARC1; p=reject; {tag}={value}")
    assert record.policy == "reject" and 0 <= record.percent <= 100


# -- discovery (6.6.3), over the loopback DNS server -----------------------------------------

LONG_RECORD = "v=DMARC1; p=reject; rua=mailto:" + "r" * 300 + "@example.com"
ORG_REJECT = {"_dmarc.example.com": ["v=DMARC1; p=reject; sp=quarantine"]}
#: (id, zone {name: [TXT, ...]}, faults {name: Fault}, author domain, (result, record domain, policy))
Expected = tuple[str, str, str]
DISCOVERY: list[tuple[str, Mapping[str, Sequence[object]], Mapping[str, Fault], str, Expected]] = [
    ("6.6.3 author domain's record", ORG_REJECT, {}, "example.com", ("fail", "example.com", "reject")),
    ("6.6.3 author record first, org not used",
     {**ORG_REJECT, "_dmarc.news.example.com": ["v=DMARC1; p=none"]}, {}, "news.example.com",
     ("fail", "news.example.com", "none")),
    ("6.6.3 NXDOMAIN at author: organizational domain, sp", ORG_REJECT, {}, "news.example.com",
     ("fail", "example.com", "quarantine")),
    ("6.6.3 no TXT at author (NODATA): organizational domain",
     {**ORG_REJECT, "_dmarc.news.example.com": []}, {}, "news.example.com",
     ("fail", "example.com", "quarantine")),
    ("6.6.3 deep subdomain goes to the organizational domain, not the parent",
     {**ORG_REJECT, "_dmarc.b.example.com": ["v=DMARC1; p=none"]}, {}, "a.b.example.com",
     ("fail", "example.com", "quarantine")),
    ("6.6.3 no sp: p applies to subdomains", {"_dmarc.example.com": ["v=DMARC1; p=reject"]}, {},
     "news.example.com", ("fail", "example.com", "reject")),
    ("6.6.3 PSL multi-label suffix", {"_dmarc.example.co.uk": ["v=DMARC1; p=reject"]}, {},
     "mail.example.co.uk", ("fail", "example.co.uk", "reject")),
    ("6.6.3 no record anywhere: none", {}, {}, "news.example.com", ("none", "", "none")),
    ("6.6.3 non-DMARC TXT beside the record",
     {"_dmarc.example.com": ["v=spf1 -all", "hello", "v=DMARC1; p=reject"]},
     {}, "example.com", ("fail", "example.com", "reject")),
    ("6.6.3 only non-DMARC TXT at author: go on",
     {**ORG_REJECT, "_dmarc.news.example.com": ["google-site-verification=abc"]}, {}, "news.example.com",
     ("fail", "example.com", "quarantine")),
    ("6.6.3 look-alike v=DMARC1x at author: go on",
     {**ORG_REJECT, "_dmarc.news.example.com": ["v=DMARC1x; p=none"]}, {}, "news.example.com",
     ("fail", "example.com", "quarantine")),
    ("6.6.3 several records: no policy (permerror)",
     {"_dmarc.example.com": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]}, {}, "example.com",
     ("permerror", "", "none")),
    ("6.6.3 several records at author do not fall back",
     {**ORG_REJECT, "_dmarc.news.example.com": ["v=DMARC1; p=none", "v=DMARC1; p=none; pct=5"]},
     {}, "news.example.com", ("permerror", "", "none")),
    ("6.6.3 unusable record at author: no fallback (permerror)",
     {**ORG_REJECT, "_dmarc.news.example.com": ["v=DMARC1; p=bogus"]}, {}, "news.example.com",
     ("permerror", "", "none")),
    ("3.2 TXT split into character-strings is joined",
     {"_dmarc.example.com": [["v=DMARC1; p=re", "ject; adkim=s"]]}, {}, "example.com",
     ("fail", "example.com", "reject")),
    ("3.2 record longer than 255 bytes", {"_dmarc.example.com": [LONG_RECORD]},
     {}, "example.com", ("fail", "example.com", "reject")),
    ("11.2 SERVFAIL at author: temperror", ORG_REJECT, {"_dmarc.news.example.com": Fault.SERVFAIL},
     "news.example.com", ("temperror", "", "none")),
    ("11.2 SERVFAIL at organizational domain: temperror", ORG_REJECT, {"_dmarc.example.com": Fault.SERVFAIL},
     "news.example.com", ("temperror", "", "none")),
    ("11.2 timeout: temperror", ORG_REJECT, {"_dmarc.example.com": Fault.SILENCE}, "example.com",
     ("temperror", "", "none")),
    ("6.6.3 truncated UDP answer retried over TCP", ORG_REJECT, {"_dmarc.example.com": Fault.TRUNCATE},
     "example.com", ("fail", "example.com", "reject")),
    ("3.2 author domain case and final dot",
     ORG_REJECT, {}, "News.Example.COM.", ("fail", "example.com", "quarantine")),
    ("3.2 IDN author domain as A-label", {"_dmarc.xn--bcher-kva.example": ["v=DMARC1; p=reject"]}, {},
     "mail.xn--bcher-kva.example", ("fail", "xn--bcher-kva.example", "reject")),
    ("3.2 author domain that is a public suffix", {"_dmarc.co.uk": ["v=DMARC1; p=reject"]}, {}, "co.uk",
     ("fail", "co.uk", "reject")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "zone", "faults", "author", "expected"), DISCOVERY, ids=[c[0] for c in DISCOVERY]
)
def test_policy_discovery(
    dns_server: DnsTestServer,
    label: str,
    zone: Mapping[str, Sequence[object]],
    faults: Mapping[str, Fault],
    author: str,
    expected: tuple[str, str, str],
) -> None:
    dns_server.zone = Zone({name: [("TXT", text) for text in texts] for name, texts in zone.items()})
    for name, fault in faults.items():
        dns_server.fault(name, fault)
    lookup = Resolver([dns_server.address], timeout=0.3).txt
    r = dmarc.evaluate(author.lower().rstrip("."), Identifiers(), lookup_txt=lookup, sample=lambda: 0.0)
    assert (r.result, r.record_domain, r.policy) == expected, (label, r)


# -- alignment (3.1) --------------------------------------------------------------------------

ALIGNMENT: list[tuple[str, str, str, bool, bool]] = [
    ("3.1.1 relaxed: same domain", "example.com", "example.com", False, True),
    ("3.1.1 relaxed: identifier is a subdomain", "mail.example.com", "example.com", False, True),
    ("3.1.1 relaxed: author is a subdomain", "example.com", "news.example.com", False, True),
    ("3.1.1 relaxed: sibling subdomains", "a.example.com", "b.example.com", False, True),
    ("3.1.1 relaxed: other organizational domain", "example.net", "example.com", False, False),
    ("3.1.1 relaxed: look-alike suffix is not a subdomain", "badexample.com", "example.com", False, False),
    ("3.1.1 strict: same domain", "example.com", "example.com", True, True),
    ("3.1.1 strict: subdomain does not align", "mail.example.com", "example.com", True, False),
    ("3.1 case-insensitive", "MAIL.Example.COM", "example.com", False, True),
    ("3.1 final dot ignored", "example.com.", "example.com", True, True),
    ("3.2 PSL: under a multi-label suffix", "bounce.example.co.uk", "example.co.uk", False, True),
    ("3.2 PSL: two registrants of one suffix", "example.co.uk", "other.co.uk", False, False),
    ("3.2 PSL private section: two github.io sites", "evil.github.io", "victim.github.io", False, False),
    ("3.2 PSL private section: inside one site", "mail.victim.github.io", "victim.github.io", False, True),
    ("3.2 a public suffix aligns with nothing under it", "co.uk", "example.co.uk", False, False),
    ("3.1 IDN: U-label identifier, A-label author", "bücher.example", "xn--bcher-kva.example", True, True),
    ("3.1 IDN: relaxed with U-labels", "mail.bücher.example", "xn--bcher-kva.example", False, True),
    ("3.1 empty identifier never aligns", "", "example.com", False, False),
]  # fmt: skip


@pytest.mark.parametrize(("label", "identifier", "author", "strict", "expected"), ALIGNMENT,
                         ids=[c[0] for c in ALIGNMENT])  # fmt: skip
def test_identifier_alignment(label: str, identifier: str, author: str, strict: bool, expected: bool) -> None:
    assert is_aligned(identifier, author, strict=strict) is expected, label


# -- policy application (6.6.2, 6.6.4, 6.7), pure ---------------------------------------------

POLICY_ZONE = {
    "_dmarc.example.com": b"v=DMARC1; p=reject; sp=none; pct=40",
    "_dmarc.strict.example": b"v=DMARC1; p=quarantine; adkim=s; aspf=s",
    "_dmarc.none.example": b"v=DMARC1; p=none; pct=0",
}


def policy_lookup(name: str) -> list[bytes]:
    return [POLICY_ZONE[name]] if name in POLICY_ZONE else []


Ids = Identifiers
#: (id, author, identifiers, sample, (result, policy, disposition))
POLICY: list[tuple[str, str, Identifiers, float, tuple[str, str, str]]] = [
    ("6.6.2 aligned SPF passes",
     "example.com", Ids(spf=("bounce.example.com",)), 0.9, ("pass", "reject", "none")),
    ("6.6.2 aligned DKIM passes", "example.com", Ids(dkim=("example.com",)), 0.9, ("pass", "reject", "none")),
    ("6.6.2 one aligned of several DKIM passes", "example.com", Ids(dkim=("esp.example", "example.com")), 0.9,
     ("pass", "reject", "none")),
    ("6.6.2 unaligned SPF and DKIM fail",
     "example.com", Ids(spf=("esp.example",), dkim=("esp.example",)), 0.1,
     ("fail", "reject", "reject")),
    ("6.6.4 pct sampled in: policy applies", "example.com", Ids(), 0.399, ("fail", "reject", "reject")),
    ("6.6.4 pct sampled out: next policy down", "example.com", Ids(), 0.4, ("fail", "reject", "quarantine")),
    ("6.3 sp=none for a subdomain", "news.example.com", Ids(), 0.0, ("fail", "none", "none")),
    ("6.6.4 pct=0 with p=none stays none", "none.example", Ids(), 0.0, ("fail", "none", "none")),
    ("3.1.1 strict DKIM: subdomain signature fails",
     "strict.example", Ids(dkim=("mail.strict.example",)), 0.0,
     ("fail", "quarantine", "quarantine")),
    ("3.1.2 strict SPF: exact domain passes", "strict.example", Ids(spf=("strict.example",)), 0.0,
     ("pass", "quarantine", "none")),
    ("11.2 aligned identifier undecided: temperror", "example.com", Ids(undecided=("example.com",)), 0.0,
     ("temperror", "reject", "reject")),
    ("11.2 unaligned undecided identifier: fail", "example.com", Ids(undecided=("esp.example",)), 0.0,
     ("fail", "reject", "reject")),
    ("6.6.1 no author domain: permerror", "", Ids(), 0.0, ("permerror", "none", "none")),
]  # fmt: skip


@pytest.mark.parametrize(("label", "author", "ids", "sample", "expected"), POLICY, ids=[c[0] for c in POLICY])
def test_policy_application(
    label: str, author: str, ids: Identifiers, sample: float, expected: tuple[str, str, str]
) -> None:
    r = dmarc.evaluate(author, ids, lookup_txt=policy_lookup, sample=lambda: sample)
    assert (r.result, r.policy, r.disposition) == expected, (label, r)


# -- through the chain: SPF and DKIM results, configured actions, From edge cases -------------

SPF_PASS = "v=spf1 ip4:192.0.2.0/24 -all"


def zone_records(key: PrivateKey) -> dict[str, list[tuple[str, str]]]:
    """What the ``dns`` fixture (tests/auth/conftest.py) serves to the chain rows."""
    dmarc_records = {
        "example.com": "v=DMARC1; p=reject; sp=quarantine",
        "strict.example": "v=DMARC1; p=reject; adkim=s; aspf=s",
        "quarantine.example": "v=DMARC1; p=quarantine",
        "monitor.example": "v=DMARC1; p=none",
        "xn--bcher-kva.example": "v=DMARC1; p=reject",
        "victim.github.io": "v=DMARC1; p=reject",
    }
    signers = ("example.com", "mail.example.com", "strict.example", "mail.strict.example", "esp.example",
               "evil.github.io", "xn--bcher-kva.example")  # fmt: skip
    spf = ("example.com", "bounce.example.com", "strict.example", "mail.strict.example", "esp.example",
           "evil.github.io")  # fmt: skip
    return {
        **{f"_dmarc.{d}": [("TXT", r)] for d, r in dmarc_records.items()},
        **{f"sel._domainkey.{d}": [("TXT", key.public_record)] for d in signers},
        **{d: [("TXT", SPF_PASS)] for d in spf},
        "forbidden.example": [("TXT", "v=spf1 -all")],
    }


#: (id, From value, MAIL FROM, DKIM d= or "", the DMARC symbol, the action)
CHAIN: list[tuple[str, bytes, str, str, str, Action]] = [
    ("3.1.2 SPF aligned (relaxed), no DKIM",
     b"a@example.com", "b@bounce.example.com", "", "DMARC_PASS", Action.ACCEPT),
    ("3.1.1 DKIM aligned (relaxed), SPF unaligned", b"a@example.com", "b@esp.example", "mail.example.com",
     "DMARC_PASS", Action.ACCEPT),
    ("3.1.1 DKIM aligned, SPF fails",
     b"a@example.com", "b@forbidden.example", "example.com", "DMARC_PASS", Action.ACCEPT),
    ("3.1 SPF and DKIM pass unaligned: p=reject rejects", b"a@example.com", "b@esp.example", "esp.example",
     "DMARC_FAIL_REJECT", Action.REJECT),
    ("3.1.1 strict: subdomain DKIM and SPF do not align", b"a@strict.example", "b@mail.strict.example",
     "mail.strict.example", "DMARC_FAIL_REJECT", Action.REJECT),
    ("3.1.1 strict: exact DKIM aligns",
     b"a@strict.example", "b@esp.example", "strict.example", "DMARC_PASS", Action.ACCEPT),
    ("6.6.3 subdomain author gets sp=quarantine: tag", b"a@news.example.com", "b@esp.example", "",
     "DMARC_FAIL_QUARANTINE", Action.TAG),
    ("6.6.3 subdomain author, aligned DKIM of the org domain",
     b"a@news.example.com", "b@esp.example", "example.com",
     "DMARC_PASS", Action.ACCEPT),
    ("6.3 p=quarantine: configured tag",
     b"a@quarantine.example", "b@esp.example", "", "DMARC_FAIL_QUARANTINE", Action.TAG),
    ("6.3 p=none: accepted, scored",
     b"a@monitor.example", "b@esp.example", "", "DMARC_FAIL_NONE", Action.ACCEPT),
    ("6.6.3 no record: none", b"a@norecord.example", "b@esp.example", "", "DMARC_NONE", Action.ACCEPT),
    ("3.2 PSL private section: evil.github.io cannot pass for victim.github.io", b"a@victim.github.io",
     "b@evil.github.io", "evil.github.io", "DMARC_FAIL_REJECT", Action.REJECT),
    ("3.1 IDN author domain, DKIM by its A-label", "a@bücher.example".encode(), "b@esp.example",
     "xn--bcher-kva.example", "DMARC_PASS", Action.ACCEPT),
    ("3.1 IDN author domain, unaligned: reject", "a@bücher.example".encode(), "b@esp.example", "",
     "DMARC_FAIL_REJECT", Action.REJECT),
    ("6.6.1 display name is not the author", b'"a@monitor.example" <ceo@example.com>', "b@esp.example", "",
     "DMARC_FAIL_REJECT", Action.REJECT),
    ("6.6.1 display name with a comma", b'"Bank, Inc." <ceo@example.com>', "b@bounce.example.com", "",
     "DMARC_PASS", Action.ACCEPT),
    ("6.6.1 encoded display name", b"=?utf-8?q?M=C3=BCller_AG?= <ceo@example.com>", "b@esp.example", "",
     "DMARC_FAIL_REJECT", Action.REJECT),
    ("6.6.1 trailing comment naming another address",
     b"ceo@example.com (<x@monitor.example>)", "b@esp.example", "",
     "DMARC_FAIL_REJECT", Action.REJECT),
    ("6.6.1 author domain in upper case",
     b"CEO@EXAMPLE.COM", "b@bounce.example.com", "", "DMARC_PASS", Action.ACCEPT),
    ("6.6.1 two authors: the strictest result", b"a@monitor.example, ceo@example.com", "b@esp.example", "",
     "DMARC_FAIL_REJECT", Action.REJECT),
]  # fmt: skip

MAIL = b"From: %s\r\nTo: bob@test.example\r\nSubject: hello\r\nMessage-ID: <1@x>\r\n\r\nHello.\r\n"


def message(from_value: bytes, signer: str, key: PrivateKey) -> bytes:
    body = MAIL % from_value
    if not signer:
        return body
    signature = dkim.sign(
        body, b"sel", signer.encode(), key.dkimpy_key, signature_algorithm=b"ed25519-sha256"
    )
    return signature + body


@pytest.mark.parametrize(("label", "from_value", "mail_from", "signer", "symbol", "action"), CHAIN,
                         ids=[c[0] for c in CHAIN])  # fmt: skip
def test_through_the_chain(
    dns: DnsTestServer,
    key: PrivateKey,
    label: str,
    from_value: bytes,
    mail_from: str,
    signer: str,
    symbol: str,
    action: Action,
) -> None:
    chain = auth_chain(dns, {"spf": {}, "dkim": {"arc": False}, "dmarc": {}})
    mail = message(from_value, signer, key)
    out = evaluate_message(
        chain, mail, client_ip="192.0.2.25", mail_from=mail_from, recipients=["bob@test.example"]
    )
    found = [s for s in out.decision.symbols if s.startswith("DMARC")]
    assert (found, out.action) == ([symbol], action), label
