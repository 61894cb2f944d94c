"""Transcript-style tests of the chain: given these filters and this transaction, expect
this decision at this stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters import (
    Action,
    Auth,
    AuthResult,
    Chain,
    ChainLink,
    Connection,
    Context,
    Filter,
    FilterSettings,
    Finding,
    Policy,
    SmtpReply,
    Stage,
    Verdict,
    evaluate,
)
from milterfilters.core.services import Services
from milterfilters.core.verdict import HeaderAdd, HeaderPosition
from milterfilters.mail.message import parse_message

MSG = b"From: a@example.org\nSubject: hello\n\nbody\n"
REJECT_554 = SmtpReply(554, "5.7.1", "no")
TEMP_451 = SmtpReply(451, "4.7.1", "later")

Script = dict[Stage, Callable[[Context], Verdict | None]]


def scripted(name: str, script: Script, *, calls: list[str] | None = None) -> Filter:
    """A filter whose stage methods are given as functions (and that logs its calls)."""

    def method(stage: Stage) -> Callable[[Filter, Context], Verdict | None]:
        def run(self: Filter, ctx: Context) -> Verdict | None:
            if calls is not None:
                calls.append(f"{name}:{stage.value}")
            return script[stage](ctx)

        return run

    attrs: dict[str, Any] = {"name": name}
    for stage in script:
        attrs[stage.value] = method(stage)
    cls = type(f"Scripted_{name}", (Filter,), attrs)
    return cls(None, Services())  # type: ignore[no-any-return]


def chain_of(*links: Filter | ChainLink, **policy: Any) -> Chain:
    items = [link if isinstance(link, ChainLink) else ChainLink(link) for link in links]
    return Chain(items, Policy(**policy))


def found(*symbols: str) -> Callable[[Context], Verdict]:
    return lambda ctx: Verdict.found(*(Finding(s) for s in symbols))


def test_findings_are_weighted_and_thresholds_pick_the_action() -> None:
    f = scripted("a", {Stage.EOM: found("BAD", "WORSE")})
    weights = {"BAD": 2.0, "WORSE": 4.5}
    assert evaluate(chain_of(f, weights=weights, tag=6.0, reject=15.0), MSG).action is Action.TAG
    assert evaluate(chain_of(f, weights=weights, tag=7.0, reject=15.0), MSG).action is Action.ACCEPT
    out = evaluate(chain_of(f, weights=weights, tag=1.0, reject=6.5), MSG)
    assert out.action is Action.REJECT
    assert out.decision.reply is not None and out.decision.reply.code == 554
    assert out.decision.score == pytest.approx(6.5)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (4.99, Action.ACCEPT),
        (5.0, Action.TAG),
        (7.99, Action.TAG),
        (8.0, Action.QUARANTINE),
        (10.0, Action.REJECT),
    ],
)
def test_threshold_boundaries_are_inclusive(score: float, expected: Action) -> None:
    policy = Policy(tag=5.0, quarantine=8.0, reject=10.0)
    assert policy.action_for(score) is expected


def test_unweighted_symbols_score_zero_and_factor_scales() -> None:
    f = scripted("a", {Stage.EOM: lambda ctx: Verdict.found(Finding("PROB", factor=0.5), Finding("UNKNOWN"))})
    out = evaluate(chain_of(f, weights={"PROB": 10.0}), MSG)
    assert {s.finding.symbol: s.score for s in out.decision.findings} == {"PROB": 5.0, "UNKNOWN": 0.0}


def test_hard_reject_short_circuits_the_stage() -> None:
    calls: list[str] = []
    first = scripted(
        "first", {Stage.EOM: lambda ctx: Verdict.reject(REJECT_554, Finding("HARD"))}, calls=calls
    )
    second = scripted("second", {Stage.EOM: found("LATER")}, calls=calls)
    out = evaluate(chain_of(first, second), MSG)
    assert out.action is Action.REJECT
    assert out.decision.reply == REJECT_554
    assert calls == ["first:eom"]
    assert out.decision.decided_by == "first"


def test_reject_at_mail_stops_the_transaction() -> None:
    calls: list[str] = []
    f = scripted(
        "m",
        {Stage.MAIL: lambda ctx: Verdict.reject(SmtpReply(550, "5.7.23", "spf")), Stage.EOM: found("X")},
        calls=calls,
    )
    out = evaluate(chain_of(f), MSG, recipients=["b@example.net"])
    assert out.stage is Stage.MAIL and out.action is Action.REJECT
    assert calls == ["m:mail"]


def test_recipients_are_judged_one_by_one() -> None:
    def rcpt(ctx: Context) -> Verdict | None:
        assert ctx.recipient is not None
        if ctx.recipient.address.endswith("@remote.test"):
            return Verdict.reject(SmtpReply(554, "5.7.1", f"<{ctx.recipient.address}>: Relay access denied"))
        return None

    seen: list[tuple[str, ...]] = []

    def eom(ctx: Context) -> None:
        assert ctx.envelope is not None
        seen.append(tuple(r.address for r in ctx.envelope.recipients))

    f = scripted("relay", {Stage.RCPT: rcpt, Stage.EOM: eom})
    out = evaluate(chain_of(f), MSG, recipients=["a@local.test", "v@remote.test", "b@local.test"])
    assert [r.action for r in out.recipients] == [Action.ACCEPT, Action.REJECT, Action.ACCEPT]
    refused = out.recipients[1].decision.reply
    assert refused is not None and refused.text == "<v@remote.test>: Relay access denied"
    assert out.action is Action.ACCEPT and out.stage is Stage.EOM
    assert seen == [("a@local.test", "b@local.test")]


def test_all_recipients_refused_means_no_data_stage() -> None:
    f = scripted("relay", {Stage.RCPT: lambda ctx: Verdict.reject(REJECT_554), Stage.EOM: found("X")})
    out = evaluate(chain_of(f), MSG, recipients=["a@x.test", "b@y.test"])
    assert out.stage is Stage.RCPT and out.action is Action.REJECT


def test_exception_becomes_tempfail_by_default_and_is_counted() -> None:
    def boom(ctx: Context) -> Verdict:
        raise RuntimeError("bug")

    chain = chain_of(scripted("crashy", {Stage.EOM: boom}))
    out = evaluate(chain, MSG)
    assert out.action is Action.TEMPFAIL
    assert out.decision.reply is not None and (out.decision.reply.code, out.decision.reply.enhanced) == (
        451,
        "4.7.1",
    )
    assert chain.metrics.get("filter_errors_total", filter="crashy") == 1
    assert any("RuntimeError: bug" in e for e in out.decision.errors)


@pytest.mark.parametrize(("on_error", "expected"), [("ignore", Action.ACCEPT), ("reject", Action.REJECT)])
def test_on_error_modes(on_error: str, expected: Action) -> None:
    def boom(ctx: Context) -> Verdict:
        raise ValueError("bad")

    link = ChainLink(scripted("f", {Stage.MAIL: boom}), FilterSettings(on_error=on_error))  # type: ignore[arg-type]
    out = evaluate(chain_of(link), MSG)
    assert out.action is expected


def test_filter_returning_garbage_or_illegal_action_is_an_error() -> None:
    garbage = scripted("garbage", {Stage.EOM: lambda ctx: "reject"})  # type: ignore[dict-item]
    assert evaluate(chain_of(garbage), MSG).action is Action.TEMPFAIL
    discard_at_connect = scripted("early", {Stage.CONNECT: lambda ctx: Verdict(action=Action.DISCARD)})
    out = evaluate(chain_of(discard_at_connect), MSG)
    assert out.stage is Stage.CONNECT and out.action is Action.TEMPFAIL


def test_slow_filter_gets_on_error() -> None:
    now = [0.0]

    def slow(ctx: Context) -> Verdict:
        now[0] += 5.0
        return Verdict.found(Finding("SLOW_RESULT"))

    link = ChainLink(scripted("slow", {Stage.EOM: slow}), FilterSettings(timeout=2.0))
    chain = Chain([link], Policy(weights={"SLOW_RESULT": 100.0}), clock=lambda: now[0])
    out = evaluate(chain, MSG)
    assert out.action is Action.TEMPFAIL
    assert "SLOW_RESULT" not in out.decision.symbols
    assert chain.metrics.get("filter_timeouts_total", filter="slow") == 1


def test_tag_asked_for_early_is_carried_to_end_of_data() -> None:
    f = scripted("early", {Stage.MAIL: lambda ctx: Verdict(action=Action.TAG)})
    out = evaluate(chain_of(f), MSG)
    assert out.stage is Stage.EOM and out.action is Action.TAG


def test_dry_run_findings_are_shown_but_never_change_the_action() -> None:
    rejecting = scripted("newrule", {Stage.EOM: lambda ctx: Verdict.reject(REJECT_554, Finding("NEW_RULE"))})
    link = ChainLink(rejecting, FilterSettings(dry_run=True))
    out = evaluate(chain_of(link, weights={"NEW_RULE": 50.0}), MSG)
    assert out.action is Action.ACCEPT
    assert out.decision.score == 0
    assert [f.finding.symbol for f in out.decision.dry_run_findings] == ["NEW_RULE"]
    dry = dict((h.name, h.value) for h in out.decision.added_headers)["X-Milterfilters-Dry-Run"]
    assert "NEW_RULE(50)" in dry and "would=reject" in dry


def test_dry_run_filter_errors_do_not_tempfail() -> None:
    def boom(ctx: Context) -> Verdict:
        raise RuntimeError("x")

    out = evaluate(chain_of(ChainLink(scripted("f", {Stage.EOM: boom}), FilterSettings(dry_run=True))), MSG)
    assert out.action is Action.ACCEPT


def test_later_stages_see_earlier_findings_and_auth_results() -> None:
    seen: list[Context] = []
    spf = scripted(
        "spf",
        {
            Stage.MAIL: lambda ctx: Verdict(
                findings=(Finding("SPF_PASS"),),
                auth_results=(AuthResult("spf", "pass", (("smtp.mailfrom", "a@example.org"),)),),
            )
        },
    )
    dmarc = scripted("dmarc", {Stage.EOM: lambda ctx: seen.append(ctx) or None})  # type: ignore[func-returns-value]
    chain = Chain([ChainLink(spf), ChainLink(dmarc)], authserv_id="mx.example.net")
    out = evaluate(chain, MSG, mail_from="a@example.org", auth_user="alice")
    ctx = seen[0]
    assert [f.symbol for f in ctx.findings] == ["SPF_PASS"]
    assert ctx.auth_results[0].result == "pass"
    assert ctx.auth == Auth(login="alice", mechanism="PLAIN")
    ar = out.decision.added_headers[0]
    assert ar.name == "Authentication-Results" and ar.position is HeaderPosition.TOP
    assert ar.value == "mx.example.net; spf=pass smtp.mailfrom=a@example.org"


def test_later_filters_of_a_stage_see_what_earlier_ones_found() -> None:
    seen: list[Context] = []
    dkim = scripted(
        "dkim",
        {
            Stage.EOM: lambda ctx: Verdict(
                findings=(Finding("DKIM_PASS"),), auth_results=(AuthResult("dkim", "pass"),)
            )
        },
    )
    dry = scripted("dry", {Stage.EOM: found("DRY_ONLY")})
    dmarc = scripted("dmarc", {Stage.EOM: lambda ctx: seen.append(ctx) or None})  # type: ignore[func-returns-value]
    chain = Chain([ChainLink(dkim), ChainLink(dry, FilterSettings(dry_run=True)), ChainLink(dmarc)])
    evaluate(chain, MSG)
    assert [f.symbol for f in seen[0].findings] == ["DKIM_PASS"]  # dry-run findings stay apart
    assert [r.method for r in seen[0].auth_results] == ["dkim"]


def test_connection_findings_apply_to_every_message_of_the_connection() -> None:
    f = scripted("conn", {Stage.CONNECT: found("BAD_CLIENT"), Stage.EOM: lambda ctx: None})
    chain = chain_of(f, weights={"BAD_CLIENT": 7.0})
    session = chain.session(Connection(client_address="198.51.100.1"))
    session.connect()
    session.helo("x")
    for _ in range(2):
        session.mail("a@example.org")
        session.rcpt("b@example.net")
        assert session.eom(parse_message(MSG)).action is Action.TAG


def test_transaction_state_does_not_leak_between_messages() -> None:
    f = scripted(
        "m",
        {
            Stage.MAIL: lambda ctx: (
                Verdict.found(Finding("FROM_BAD"))
                if ctx.envelope and ctx.envelope.mail_from == "bad@x.test"
                else None
            ),
            Stage.EOM: lambda ctx: None,
        },
    )
    chain = chain_of(f, weights={"FROM_BAD": 7.0})
    s = chain.session()
    s.connect()
    s.mail("bad@x.test")
    assert s.eom(parse_message(MSG)).action is Action.TAG
    s.mail("good@x.test")
    assert s.eom(parse_message(MSG)).action is Action.ACCEPT
    s.mail("bad@x.test")
    s.abort()
    s.mail("good@x.test")
    assert s.eom(parse_message(MSG)).action is Action.ACCEPT


def test_filter_headers_are_passed_through() -> None:
    f = scripted("h", {Stage.EOM: lambda ctx: Verdict(headers=(HeaderAdd("X-Test", "yes"),))})
    out = evaluate(chain_of(f), MSG)
    assert ("X-Test", "yes") in [(h.name, h.value) for h in out.decision.added_headers]


def test_subject_prefix_only_when_tagged() -> None:
    f = scripted("a", {Stage.EOM: found("SPAMMY")})
    tagged = evaluate(chain_of(f, weights={"SPAMMY": 7.0}, subject_prefix="[SPAM]"), MSG)
    assert tagged.decision.subject_prefix == "[SPAM]"
    clean = evaluate(chain_of(f, weights={"SPAMMY": 1.0}, subject_prefix="[SPAM]"), MSG)
    assert clean.decision.subject_prefix == ""


def test_only_stages_with_filters_are_negotiated() -> None:
    chain = chain_of(scripted("a", {Stage.RCPT: lambda ctx: None}))
    assert chain.stages == {Stage.RCPT}
    assert not chain.needs_body


# -- property: adding a positive-weight finding never lowers the action ---------------------

symbols = st.sampled_from(["A", "B", "C", "D"])
weights_st = st.dictionaries(symbols, st.floats(min_value=0, max_value=20, allow_nan=False), min_size=4)


@settings(max_examples=200, deadline=None)
@given(
    weights=weights_st,
    base=st.lists(symbols, max_size=5),
    extra=symbols,
    hard=st.sampled_from([None, "tempfail", "reject", "tag"]),
)
def test_adding_a_positive_finding_never_lowers_the_action(
    weights: dict[str, float], base: list[str], extra: str, hard: str | None
) -> None:
    def make(findings: list[str]) -> Callable[[Context], Verdict]:
        def eom(ctx: Context) -> Verdict:
            fs = tuple(Finding(s) for s in findings)
            if hard == "tempfail":
                return Verdict.tempfail(TEMP_451, *fs)
            if hard == "reject":
                return Verdict.reject(REJECT_554, *fs)
            if hard == "tag":
                return Verdict(findings=fs, action=Action.TAG)
            return Verdict.found(*fs)

        return eom

    policy = {"weights": weights, "tag": 6.0, "quarantine": 10.0, "reject": 15.0}
    before = evaluate(chain_of(scripted("f", {Stage.EOM: make(base)}), **policy), MSG).action
    after = evaluate(chain_of(scripted("f", {Stage.EOM: make([*base, extra])}), **policy), MSG).action
    assert after >= before


def test_a_second_helo_replaces_what_the_first_found() -> None:
    # EHLO is sent again after STARTTLS: its findings must not count twice
    f = scripted("h", {Stage.HELO: found("ODD_HELO"), Stage.EOM: lambda ctx: None})
    chain = chain_of(f, weights={"ODD_HELO": 4.0})
    session = chain.session(Connection(client_address="198.51.100.1"))
    session.connect()
    session.helo("x")
    session.helo("x")
    session.mail("a@example.org")
    session.rcpt("b@example.net")
    decision = session.eom(parse_message(MSG))
    assert [s.finding.symbol for s in decision.findings] == ["ODD_HELO"]
    assert decision.action is Action.ACCEPT


def test_a_refusal_does_not_log_the_previous_message_queue_id(caplog: pytest.LogCaptureFixture) -> None:
    # Postfix knows no queue id yet at the first RCPT of a message: the last message's stays
    # among the connection's macros and must not be logged as this one's
    refuse = SmtpReply(550, "5.1.1", "no such user")
    f = scripted(
        "r",
        {
            Stage.RCPT: lambda ctx: Verdict.reject(refuse) if ctx.recipient.address == "bad@x.test" else None,
            Stage.EOM: lambda ctx: None,
        },
    )
    session = chain_of(f).session(Connection(client_address="198.51.100.1"))
    session.update_macros({"i": "FIRSTQID"})
    session.mail("a@example.org", queue_id="FIRSTQID")
    session.rcpt("b@example.net")
    session.eom(parse_message(MSG))
    with caplog.at_level("INFO", logger="milterfilters.decision"):
        session.mail("a@example.org")
        assert session.rcpt("bad@x.test").action is Action.REJECT
    (line,) = [r.getMessage() for r in caplog.records if r.name == "milterfilters.decision"]
    assert "rcpt=bad@x.test" in line and "FIRSTQID" not in line
