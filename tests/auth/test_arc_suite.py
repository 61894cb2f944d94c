"""ARC chain validation (RFC 8617 5.2), table-driven: cv= along the chain, instance numbers,
what each hop's seal and message signature cover, and DNS trouble. Our own cases, written
for the rules the published suites exercise (ValiMail's arc_test_suite among them)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from milterfilters.auth.arc import arc_sets, verify_arc
from milterfilters.auth.dkim_keys import PrivateKey, generate_key
from milterfilters.mail.message import parse_message
from tests.auth.arcchains import ORIGINAL, Sealer, lookup_for, seal

PASS = "dmarc=pass header.from=example.com"


@pytest.fixture(scope="module")
def keys() -> tuple[PrivateKey, PrivateKey, PrivateKey]:
    return tuple(generate_key("rsa", 1024)[1] for _ in range(3))  # type: ignore[return-value]


def sealers(keys: tuple[PrivateKey, ...]) -> tuple[Sealer, Sealer, Sealer]:
    names = ("lists.example.org", "relay.example.net", "fwd.example.com")
    return tuple(Sealer(n, k) for n, k in zip(names, keys, strict=True))  # type: ignore[return-value]


def _instance(message: bytes, old: int, new: int) -> bytes:
    """Renumber ARC set ``old`` as ``new`` in all three of its fields."""
    return re.sub(rb"(?m)^(ARC-[A-Za-z-]+: (?:[^\r\n]*?\s)?i=)%d;" % old, rb"\g<1>%d;" % new, message)


def _drop_field(message: bytes, name: bytes, instance: int) -> bytes:
    pattern = rb"(?ms)^%s: i=%d;.*?\r\n(?=\S)" % (re.escape(name), instance)
    return re.sub(pattern, b"", message, count=1)


def _flip_seal_signature(message: bytes, instance: int) -> bytes:
    """Change one character of the ``b=`` of ARC-Seal ``instance``."""
    at = message.index(b"b=", message.index(b"ARC-Seal: i=%d;" % instance)) + 2
    flipped = b"A" if message[at : at + 1] != b"A" else b"B"
    return message[:at] + flipped + message[at + 1 :]


Build = Callable[[tuple[Sealer, Sealer, Sealer]], bytes]


def one(s: tuple[Sealer, Sealer, Sealer]) -> bytes:
    return seal(ORIGINAL, s[0], results=PASS)


def two(s: tuple[Sealer, Sealer, Sealer]) -> bytes:
    return seal(one(s), s[1], cv="pass", results="dmarc=fail header.from=example.com")


def three(s: tuple[Sealer, Sealer, Sealer]) -> bytes:
    return seal(two(s), s[2], cv="pass")


def modified_between_hops(s: tuple[Sealer, Sealer, Sealer]) -> bytes:
    footer = one(s).replace(b"Subject: minutes", b"Subject: [team] minutes") + b"--\r\nteam list\r\n"
    return seal(footer, s[1], cv="pass")


CASES: list[tuple[str, Build, str]] = [
    ("no ARC fields", lambda s: ORIGINAL, "none"),
    ("one set, cv=none", one, "pass"),
    ("two sets, cv=pass", two, "pass"),
    ("three sets", three, "pass"),
    ("message changed between hops: only the newest AMS counts", modified_between_hops, "pass"),
    ("body changed after the last seal", lambda s: two(s).replace(b"Minutes attached.", b"Invoice."), "fail"),
    ("From changed after the last seal",
     lambda s: two(s).replace(b"alice@example.com", b"ceo@example.com"), "fail"),
    ("a sealer declared the chain failed (cv=fail)", lambda s: seal(one(s), s[1], cv="fail"), "fail"),
    ("first set claims cv=pass", lambda s: one(s).replace(b"cv=none", b"cv=pass", 1), "fail"),
    ("second set claims cv=none", lambda s: two(s).replace(b"cv=pass", b"cv=none", 1), "fail"),
    ("instance gap: 1 and 3", lambda s: _instance(two(s), 2, 3), "fail"),
    ("chain not starting at 1", lambda s: _instance(one(s), 1, 2), "fail"),
    ("duplicate instance", lambda s: _instance(two(s), 2, 1), "fail"),
    ("set 1 without its ARC-Authentication-Results",
     lambda s: _drop_field(two(s), b"ARC-Authentication-Results", 1), "fail"),
    ("set 2 without its ARC-Message-Signature",
     lambda s: _drop_field(two(s), b"ARC-Message-Signature", 2), "fail"),
    ("set 1 without its ARC-Seal", lambda s: _drop_field(two(s), b"ARC-Seal", 1), "fail"),
    ("oldest seal's b= altered", lambda s: _flip_seal_signature(two(s), 1), "fail"),
    ("newest seal's b= altered", lambda s: _flip_seal_signature(two(s), 2), "fail"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "build", "expected"), CASES, ids=[c[0] for c in CASES])
def test_arc_chain_validation(keys: tuple[PrivateKey, ...], label: str, build: Build, expected: str) -> None:
    s = sealers(keys)
    outcome = verify_arc(build(s), lookup_for(*s))  # type: ignore[arg-type]
    assert outcome.result == expected, (label, outcome)


def test_sealers_are_reported_newest_first(keys: tuple[PrivateKey, ...]) -> None:
    s = sealers(keys)
    outcome = verify_arc(three(s), lookup_for(*s))  # type: ignore[arg-type]
    assert outcome.sealers == ("fwd.example.com", "relay.example.net", "lists.example.org")


def test_a_sealer_key_missing_fails_and_a_dns_outage_is_temporary(keys: tuple[PrivateKey, ...]) -> None:
    s = sealers(keys)
    assert verify_arc(two(s), lookup_for(s[1])).result == "fail"  # type: ignore[arg-type]
    outage = lookup_for(*s, failing=s[0].record_name)
    assert verify_arc(two(s), outage).result == "temperror"  # type: ignore[arg-type]


def test_arc_sets_read_instance_sealer_and_recorded_results(keys: tuple[PrivateKey, ...]) -> None:
    s = sealers(keys)
    sets = arc_sets(parse_message(two(s)))
    assert [(a.instance, a.sealer) for a in sets] == [(1, "lists.example.org"), (2, "relay.example.net")]
    assert "dmarc=pass header.from=example.com" in sets[0].authentication_results
    assert "arc=pass" in sets[1].authentication_results
