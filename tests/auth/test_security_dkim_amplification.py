"""Security regression: DKIM CPU amplification. A sender controls how many signatures a
message carries, their canonicalizations and ``l=``, and the body's shape. dkimpy
canonicalized the whole body again per signature (10 signatures on 10 MB: ~11 s of CPU,
514 MB), in quadratic time on a long run of blanks, and the filter's timeout only judged the
work afterwards. Now each canonicalization is hashed once, in linear time, under a budget of
bytes per message and the filter call's deadline; what is skipped is never a pass."""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any

import dkim
import pytest
from dkim import rfc822_parse
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters.api import evaluate
from milterfilters.auth.arc import verify_arc
from milterfilters.auth.dkim_body import BodyHashes, canonical_pieces
from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.auth.dkim_verify import split_message, verify_message
from milterfilters.core.chain import Chain
from milterfilters.core.deadline import Deadline, DeadlineExceeded
from milterfilters.core.verdict import Action
from tests.support.dnsserver import DnsTestServer
from tests.support.mailauth import auth_chain, authentication_results

HEAD = b"From: Alice <alice@example.com>\r\nTo: bob@test.example\r\nSubject: report\r\n"
LINE = b"A line  of\tbody text with  blanks, about seventy characters long...  \r\n"
BODY_1MB = LINE * (1024 * 1024 // len(LINE))


def zone_records(key: PrivateKey) -> dict[str, Any]:
    return {"s._domainkey.example.com": [("TXT", key.public_record)]}


def lookup_for(key: PrivateKey) -> Any:
    return lambda name: [key.public_record.encode()] if name == "s._domainkey.example.com" else []


def signed(key: PrivateKey, body: bytes, n: int) -> bytes:
    """``body`` under ``n`` Ed25519 signatures, alternating canonicalizations, every other one with l=."""
    message = HEAD + b"\r\n" + body
    for i in range(n):
        canonicalization = (b"relaxed", b"relaxed" if i % 2 else b"simple")
        signature = dkim.sign(
            message, b"s", b"example.com", key.dkimpy_key, signature_algorithm=b"ed25519-sha256",
            canonicalize=canonicalization, length=i % 4 < 2,
        )  # fmt: skip
        message = signature + message
    return message


@pytest.fixture(scope="module")
def ten_signatures(key: PrivateKey) -> bytes:
    return signed(key, BODY_1MB, 10)


def dkimpy_canonical(body: bytes, algorithm: str) -> bytes:
    _, normalized = rfc822_parse(b"A: b\r\n\r\n" + body)
    return (Relaxed if algorithm == "relaxed" else Simple).canonicalize_body(normalized)  # type: ignore[no-any-return]


def test_ten_signatures_on_a_large_body_hash_each_canonicalization_once(
    key: PrivateKey, ten_signatures: bytes
) -> None:
    _, body = split_message(ten_signatures)
    hashes = BodyHashes(body, max_bytes=10 * len(body))
    results = verify_message(ten_signatures, lookup_for(key), now=time.time(), body_hashes=hashes)
    assert [r.result for r in results] == ["pass"] * 10
    assert hashes.hashed <= 2 * (len(body) + 2), "a canonicalization was hashed more than once"


def test_ten_signatures_on_a_large_body_cost_little_cpu(key: PrivateKey, ten_signatures: bytes) -> None:
    start = time.process_time()
    results = verify_message(ten_signatures, lookup_for(key), now=time.time())
    cpu = time.process_time() - start
    assert all(r.result == "pass" for r in results)
    assert cpu < 1.0, f"{cpu:.2f}s of CPU for 10 signatures on 1 MB"  # dkimpy alone: ~0.35 s


def test_hashed_bytes_budget_leaves_signatures_unverified_never_pass(key: PrivateKey) -> None:
    message = HEAD + b"\r\n" + BODY_1MB
    first_lines = BODY_1MB[: BODY_1MB.rindex(b"\r\n", 0, 1000) + 2]
    # one signature with l= over the first lines (within the budget), one over the whole body
    partial = dkim.sign(HEAD + b"\r\n" + first_lines, b"s", b"example.com", key.dkimpy_key,
                        signature_algorithm=b"ed25519-sha256", length=True)  # fmt: skip
    whole = dkim.sign(message, b"s", b"example.com", key.dkimpy_key, signature_algorithm=b"ed25519-sha256")
    results = verify_message(
        partial + whole + message, lookup_for(key), now=time.time(), max_hashed_bytes=4096
    )
    assert results[0].result == "pass", results[0]
    assert results[0].unsigned_body_bytes > 0  # what follows its l= is not signed
    assert results[1].result == "neutral"
    assert "4096 bytes hashed per message" in results[1].reason


def test_dkim_filter_reports_what_the_budget_skipped(dns: DnsTestServer, ten_signatures: bytes) -> None:
    chain = auth_chain(dns, {"dkim": {"max_hashed_bytes": 4096}})
    out = evaluate(chain, ten_signatures, client_ip="192.0.2.1", recipients=["bob@test.example"])
    symbols = out.decision.symbols
    assert "DKIM_PASS" not in symbols
    assert "DKIM_UNVERIFIED" in symbols
    details = [f.finding.detail for f in out.decision.findings if f.finding.symbol == "DKIM_UNVERIFIED"]
    assert any("bytes hashed per message" in d for d in details)
    header = authentication_results(out.decision.added_headers)
    assert "dkim=pass" not in header and "dkim=neutral" in header


def test_dkim_hashing_stops_at_the_deadline(ten_signatures: bytes) -> None:
    ticks = itertools.count()
    deadline = Deadline(5, clock=lambda: float(next(ticks)))  # expires at the 5th check
    _, body = split_message(ten_signatures)
    hashes = BodyHashes(body, max_bytes=10 * len(body), deadline=deadline)
    with pytest.raises(DeadlineExceeded, match="DKIM body hashing"):
        hashes.digest("relaxed")
    assert 0 < hashes.hashed < len(body) // 2


def test_dkim_filter_past_its_timeout_gets_on_error(dns: DnsTestServer, key: PrivateKey) -> None:
    body = b"word" + b"  " * 2_000_000 + b"\r\n"  # 4 MB of blanks: relaxed work, no early exit
    message = signed(key, b"x\r\n", 1).replace(b"\r\n\r\nx\r\n", b"\r\n\r\n" + body)
    chain: Chain = auth_chain(dns, {"dkim": {"timeout": 0.005, "on_error": "tempfail"}})
    start = time.monotonic()
    out = evaluate(chain, message, client_ip="192.0.2.1", recipients=["bob@test.example"])
    assert out.action is Action.TEMPFAIL
    assert time.monotonic() - start < 2.0
    assert chain.metrics.get("filter_timeouts_total", filter="dkim") == 1
    assert any("stopped" in e for e in out.decision.errors)


def test_long_run_of_blanks_is_canonicalized_in_linear_time() -> None:
    sample = b" \t" * 1000 + b"x  \r\n\r\n"
    for algorithm in ("simple", "relaxed"):
        assert b"".join(canonical_pieces(sample, algorithm, 100)) == dkimpy_canonical(sample, algorithm)
    start = time.process_time()
    canonical = b"".join(canonical_pieces(b" " * 8_000_000 + b"x", "relaxed"))
    assert canonical == b" x\r\n"
    assert time.process_time() - start < 1.0  # dkimpy's regular expression: hours


def test_more_than_fifty_arc_sets_fail_before_any_key_lookup() -> None:
    asked: list[str] = []
    fields = b"".join(
        b"ARC-Seal: i=%d; a=rsa-sha256; cv=pass; d=example.com; s=s; b=AAAA\r\n" % i for i in range(51, 0, -1)
    )
    outcome = verify_arc(fields + HEAD + b"\r\nbody\r\n", lambda name: asked.append(name) or [])
    assert outcome.result == "fail" and "more than 50" in outcome.reason
    assert asked == []


BODY_PARTS = st.sampled_from(
    [b" ", b"\t", b"\r", b"\n", b"\r\n", b"a", b"b ", b"\r\n\r\n", b"  \r\n", b"\r\r\n"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(BODY_PARTS, max_size=40).map(b"".join), st.integers(1, 12), st.integers(0, 60))
def test_canonical_body_is_dkimpys_whatever_the_chunking(body: bytes, chunk: int, limit: int) -> None:
    for algorithm in ("simple", "relaxed"):
        expected = dkimpy_canonical(body, algorithm)
        assert b"".join(canonical_pieces(body, algorithm, chunk)) == expected
        hashes = BodyHashes(body, max_bytes=10_000)
        hashes.want([(algorithm, limit)])
        assert hashes.digest(algorithm, limit) == hashlib.sha256(expected[:limit]).digest()
        assert hashes.digest(algorithm) == hashlib.sha256(expected).digest()
        assert hashes.length(algorithm) == len(expected)
