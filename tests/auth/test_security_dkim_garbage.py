"""Security regression: a sender controls every DKIM-Signature, ARC and From field. No value
may make the authentication filters raise (the chain would turn that into a 451 for every
copy of the message, a cheap way to block mail); it must yield a result instead."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milterfilters.api import build_chain
from milterfilters.auth.arc import arc_sets, verify_arc
from milterfilters.auth.dkim_keys import generate_key
from milterfilters.auth.dkim_verify import verify_message
from milterfilters.auth.dmarc_policy import authors
from milterfilters.config import config_from_dict
from milterfilters.core.context import Connection, HeaderField, Message

TAGS = ["v", "a", "b", "bh", "c", "d", "h", "i", "l", "q", "s", "t", "x", "z", "cv"]
SAMPLES = [
    "1", "rsa-sha256", "ed25519-sha256", "rsa-sha1", "relaxed/relaxed", "simple/x", "from : to",
    "example.com", "sel", "from", "ZnJvbQ==", "99999999999999999999", "-1", "", "=", "AAAA",
    "@example.com", "x.\u00e9",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(SAMPLES),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30),
)
PLAUSIBLE = {
    "v": "1", "a": "rsa-sha256", "c": "relaxed/relaxed", "d": "example.com", "s": "sel",
    "h": "from : subject", "bh": "ZnJvbQ==", "b": "AAAAAAAA",
}  # fmt: skip
#: a plausible signature with some tags replaced by arbitrary values and some added
SIGNATURE = st.tuples(
    st.dictionaries(st.sampled_from(TAGS), VALUES, max_size=4),
    st.sets(st.sampled_from(sorted(PLAUSIBLE)), max_size=2),
).map(lambda g: "; ".join(f"{k}={v}" for k, v in ({**PLAUSIBLE, **g[0]}).items() if k not in g[1]))
ARC_FIELDS = ["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"]
ZONE = {"sel._domainkey.example.com": [generate_key("rsa", 1024)[1].public_record.encode()]}


def lookup(name: str) -> list[bytes]:
    return ZONE.get(name, [])


def message_with(fields: list[tuple[str, str]]) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in fields)
    return (head + "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n").encode("utf-8", "surrogateescape")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SIGNATURE, min_size=1, max_size=3))
def test_any_dkim_signature_yields_a_result(values: list[str]) -> None:
    results = verify_message(message_with([("DKIM-Signature", v) for v in values]), lookup, now=time.time())
    assert len(results) == len(values)
    assert all(r.result in ("fail", "permerror", "neutral", "pass") for r in results)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(ARC_FIELDS), SIGNATURE.map(lambda s: "i=1; " + s)), min_size=1, max_size=4
    )
)
def test_any_arc_set_yields_a_result(fields: list[tuple[str, str]]) -> None:
    raw = message_with(fields)
    assert verify_arc(raw, lookup).result in ("pass", "fail", "none")
    arc_sets(Message(headers=tuple(HeaderField(n, " " + v) for n, v in fields)))


@given(st.lists(st.text(max_size=40), max_size=3))
def test_any_from_field_yields_authors(values: list[str]) -> None:
    found = authors(Message(headers=tuple(HeaderField("From", " " + v) for v in values)))
    assert found.field_count == len(values)


@given(st.lists(st.text(max_size=60), min_size=1, max_size=3))
def test_any_authentication_results_field_is_judged(values: list[str]) -> None:
    from milterfilters.api import build_chain, evaluate
    from milterfilters.config import config_from_dict

    chain = build_chain(
        config_from_dict({"milter": {"authserv_id": "mx.test.example"}, "relay": {"enabled": False}})
    )
    fields = "".join(f"Authentication-Results: {v}\r\n" for v in values if "\n" not in v and "\r" not in v)
    out = evaluate(chain, (fields + "From: a@x.example\r\n\r\nbody\r\n").encode("utf-8", "surrogateescape"))
    assert out.decision.errors == ()


def test_folded_signature_tags_do_not_break_the_added_header() -> None:
    # FWS is legal inside a tag-list: a folded s= once reached Authentication-Results
    # with its line break, the header was refused and the message tempfailed for ever
    chain = build_chain(config_from_dict({"dkim": {"enabled": True, "arc": False}}))
    session = chain.session(Connection(client_address="192.0.2.1"))
    session.mail("a@example.org")
    session.rcpt("b@example.net")
    signature = " v=1; a=rsa-sha256; d=example.com; s=se\r\n\tl; h=from; b=AAAA"  # no bh=: no DNS
    fields = (HeaderField("DKIM-Signature", signature), HeaderField("From", " a@example.com"))
    decision = session.eom(Message(headers=fields, body=b"hi\r\n", size=4))
    (added,) = [h for h in decision.added_headers if h.name == "Authentication-Results"]
    assert "dkim=permerror" in added.value and "header.s=" in added.value
    assert "\r" not in added.value
