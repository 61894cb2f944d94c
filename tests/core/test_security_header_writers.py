"""Issue 10: every header we write is built from typed parts, quoted by its RFC, and reads back
(with the authres library, not our own code) as exactly the entries we computed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters import (
    Chain,
    ChainLink,
    Context,
    Filter,
    FilterSettings,
    Finding,
    Policy,
    Verdict,
    evaluate,
)
from milterfilters.core.authresults import fold, quote_comment, render_authentication_results
from milterfilters.core.services import Services
from milterfilters.core.verdict import AuthResult, HeaderAdd
from tests.support.written_headers import (
    assert_folded,
    assert_reads_back,
    parsed_authentication_results,
    unfold,
)

MSG = b"From: a@example.org\nSubject: hello\n\nbody\n"

#: what an attacker puts into a local part, a HELO, a DKIM tag or a DNS TXT text
hostile_text = st.text(
    alphabet=st.characters(max_codepoint=0x2FF)
    | st.sampled_from(list('@;=()"\\ \t\r\n.,:<>[]/?') + ["é", "\u2028", "\x85", "\udcff", "\u00a0"]),
    max_size=60,
)
keyword = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
properties = st.lists(
    st.tuples(
        st.sampled_from(
            ["smtp.mailfrom", "smtp.helo", "header.d", "header.i", "header.b", "header.from", "policy.x"]
        ),
        st.one_of(
            hostile_text,
            st.builds(lambda local, domain: f"{local}@{domain}", hostile_text, hostile_text),
            st.from_regex(r"[a-z0-9.+-]{0,12}@[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,3}\.?", fullmatch=True),
        ),
    ),
    max_size=4,
    unique_by=lambda prop: prop[0],  # authres keeps one value per property name
)
auth_results = st.builds(
    AuthResult,
    method=st.sampled_from(["spf", "dkim", "dmarc", "arc", "iprev"]),
    result=st.sampled_from(["pass", "fail", "none", "neutral", "temperror", "permerror", "policy"]),
    properties=properties.map(tuple),
    reason=hostile_text,
    comment=hostile_text,
)


@settings(max_examples=400, deadline=None)
@given(
    results=st.lists(auth_results, max_size=5),
    authserv_id=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9-]{0,8}[a-z0-9]){0,3}", fullmatch=True),
)
def test_authentication_results_read_back_as_exactly_the_entries_we_computed(
    results: list[AuthResult], authserv_id: str
) -> None:
    value = render_authentication_results(authserv_id, results)
    HeaderAdd("Authentication-Results", value)  # raises on a bare line break
    assert value.isascii()
    assert_reads_back(value, authserv_id, results)
    assert_folded("Authentication-Results", value)


@settings(max_examples=200, deadline=None)
@given(text=hostile_text)
def test_a_comment_reads_back_as_one_comment(text: str) -> None:
    value = render_authentication_results("mx.test", [AuthResult("spf", "pass", comment=text)])
    _, entries = parsed_authentication_results(value)
    assert entries == [("spf", "pass", "", {})]


def test_authentication_results_injection_through_a_property_value() -> None:
    """A quoted local part holding ``;`` and ``=`` must stay one property value."""
    forged = "a; dkim=pass header.d=paypal.com; dmarc=pass header.from=paypal.com"
    result = AuthResult("spf", "fail", properties=(("smtp.mailfrom", f"{forged}@example.com"),))
    _, entries = parsed_authentication_results(render_authentication_results("mx.test", [result]))
    assert [e[0] for e in entries] == ["spf"]
    assert entries[0][3] == {"smtp.mailfrom": f"{forged}@example.com"}


def test_authentication_results_injection_through_a_comment() -> None:
    result = AuthResult("dkim", "fail", comment="x) ; dmarc=pass header.from=paypal.com (y \\")
    value = render_authentication_results("mx.test", [result])
    assert quote_comment(result.comment) in value
    _, entries = parsed_authentication_results(value)
    assert [e[:2] for e in entries] == [("dkim", "fail")]


def test_authentication_results_injection_through_a_line_break() -> None:
    result = AuthResult(
        "spf", "pass", properties=(("smtp.helo", "a.example\r\nAuthentication-Results: mx.test; dkim=pass"),)
    )
    value = render_authentication_results("mx.test", [result])
    HeaderAdd("Authentication-Results", value)
    assert [e[0] for e in parsed_authentication_results(value)[1]] == ["spf"]


@pytest.mark.parametrize(
    ("method", "result", "prop"),
    [
        ("spf pass", "pass", "smtp.helo"),
        ("spf", "pass;", "smtp.helo"),
        ("spf", "pass", "smtp.helo=x"),
        ("spf", "pass", "helo"),
    ],
)
def test_names_that_are_not_keywords_are_a_bug_not_a_header(method: str, result: str, prop: str) -> None:
    with pytest.raises(ValueError, match="Authentication-Results"):
        render_authentication_results("mx.test", [AuthResult(method, result, properties=((prop, "x"),))])


def test_addresses_are_written_bare_only_with_a_multi_label_domain_and_no_trailing_dot() -> None:
    value = render_authentication_results(
        "mx.test",
        [
            AuthResult(
                "spf", "pass", properties=(("smtp.mailfrom", "u@example.com"), ("smtp.helo", "u@localhost."))
            )
        ],
    )
    assert "smtp.mailfrom=u@example.com" in value and 'smtp.helo="u@localhost."' in value


def test_many_results_are_one_per_line_within_78_characters() -> None:
    results = [
        AuthResult(
            "dkim", "pass", properties=(("header.d", f"d{i}.example.com"), ("header.b", "A" * 20 + "/+="))
        )
        for i in range(12)
    ] + [AuthResult("arc", "pass", comment=" ".join(f"sealer{i}.example.org" for i in range(10)))]
    value = render_authentication_results("mx.test", results)
    assert value.count(";\n\t") == len(results)
    assert all(len(line) <= 78 for line in ("Authentication-Results: " + value).split("\n"))
    assert_reads_back(value, "mx.test", results)


@given(words=st.lists(st.from_regex(r"[A-Z_]{1,30}", fullmatch=True), max_size=40))
def test_fold_only_adds_line_breaks_before_spaces(words: list[str]) -> None:
    value = " ".join(words)
    folded = fold("X-Milterfilters-Symbols", value)
    assert unfold(folded) == value
    assert_folded("X-Milterfilters-Symbols", folded)


# -- our verdict headers, through the chain ------------------------------------------------------


def _finder(name: str, symbols: list[str]) -> Filter:
    def eom(self: Filter, ctx: Context) -> Verdict:
        return Verdict.found(*(Finding(s) for s in symbols))

    cls: type[Filter] = type(f"Finder_{name}", (Filter,), {"name": name, "eom": eom})
    return cls(None, Services())  # type: ignore[arg-type]


def _headers(out: Any) -> dict[str, str]:
    return {h.name: h.value for h in out.decision.added_headers}


def test_status_headers_are_folded_and_read_back_as_the_symbols() -> None:
    symbols = [f"SOME_LONG_SYMBOL_NAME_{i}" for i in range(15)]
    weights: dict[str, float] = {s: 0.5 for s in symbols}
    chain = Chain(
        [
            ChainLink(_finder("many", symbols)),
            ChainLink(_finder("dry", ["DRY_SYMBOL"]), FilterSettings(dry_run=True)),
        ],
        Policy(weights=weights, tag=5.0),
    )
    headers = _headers(evaluate(chain, MSG))
    for name, value in headers.items():
        HeaderAdd(name, value)
        assert_folded(name, value)
        assert all(len(line) <= 78 for line in f"{name}: {value}".split("\n"))
    assert unfold(headers["X-Milterfilters-Symbols"]) == ", ".join(f"{s}(0.5)" for s in symbols)
    assert unfold(headers["X-Milterfilters-Score"]) == "7.50"
    assert headers["X-Spam-Flag"] == "YES"
    assert unfold(headers["X-Milterfilters-Dry-Run"]).endswith("; would=tag")
