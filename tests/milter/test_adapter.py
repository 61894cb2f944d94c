"""The pymilter adapter driven by pymilter's TestCtx (no MTA) and by a real libmilter
worker over its socket (miltertest as the MTA side)."""

from __future__ import annotations

import io
from typing import Any, ClassVar

import Milter
import pytest

from milterfilters.api import build_chain
from milterfilters.config import config_from_dict
from milterfilters.milter.adapter import ChainHolder, ChainMilter, make_milter_class
from tests.support.plainmta import NO_REPLY_BITS, PlainMTA

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
def milter_ctx(toml: dict[str, Any] | None = None) -> PlainMTA:
    chain = build_chain(config_from_dict(toml or {}))
    Milter.factory = make_milter_class(ChainHolder(chain))
    return PlainMTA()


def feed(ctx: PlainMTA, message: bytes, sender: str = "a@client.example", *rcpts: str) -> int:
    return ctx._feedFile(io.BytesIO(message), sender, *(rcpts or ("user@test.example",)))  # type: ignore[no-any-return]


def test_gtube_is_rejected_with_the_chain_reply() -> None:
    ctx = milter_ctx()
    assert (
        ctx._connect(host="mail.client.example", helo="mail.client.example", ip="203.0.113.7")
        == Milter.CONTINUE
    )
    rc = feed(ctx, b"From: a@client.example\nSubject: gtube\n\n" + GTUBE + b"\n")
    assert rc == Milter.REJECT
    assert ctx._reply == ("554", "5.7.1", "Message rejected as spam")


def test_clean_mail_is_accepted_with_status_headers() -> None:
    ctx = milter_ctx()
    ctx._connect(ip="203.0.113.7")
    assert feed(ctx, b"From: a@client.example\nSubject: hi\n\nhello\n") == Milter.ACCEPT
    names = [name for name, _, _ in ctx.added]
    assert names == [
        "X-Milterfilters-Score",
        "X-Milterfilters-Symbols",
        "X-Spam-Status",
        "X-Spam-Score",
        "X-Spam-Level",
    ]


def test_tag_changes_subject_and_adds_flag() -> None:
    ctx = milter_ctx({"scores": {"GTUBE": 7.0}, "actions": {"subject_prefix": "[SPAM]"}})
    ctx._connect(ip="203.0.113.7")
    assert feed(ctx, b"From: a@x.example\nSubject: offer\n\n" + GTUBE + b"\n") == Milter.ACCEPT
    assert ("X-Spam-Flag", "YES", -1) in ctx.added
    assert ctx.changed == [("Subject", 1, "[SPAM] offer")]


class HeaderSkippingMTA(PlainMTA):
    """Sends no header fields when the milter negotiated them away, as real MTAs do."""

    def _header(self, fld: str, val: str) -> int:
        if self._protocol & Milter.P_NOHDRS:
            return Milter.CONTINUE
        return super()._header(fld, val)  # type: ignore[no-any-return]


def test_tagging_by_envelope_findings_prefixes_the_existing_subject() -> None:
    # no filter reads the header here, but the Subject must be seen to be prefixed, not doubled
    toml: dict[str, Any] = {
        name: {"enabled": False} for name in ("gtube", "size", "classifier", "authres_forgery")
    }
    toml["relay"] = {"local_domains": ["x.example"], "unauthenticated_local_sender": "score"}
    toml["scores"] = {"RELAY_LOCAL_SENDER_UNAUTHENTICATED": 7.0}
    toml["actions"] = {"subject_prefix": "[SPAM]"}
    Milter.factory = make_milter_class(ChainHolder(build_chain(config_from_dict(toml))))
    ctx = HeaderSkippingMTA()
    ctx._connect(ip="203.0.113.7")
    message = b"From: a@x.example\nSubject: offer\n\nhello\n"
    assert feed(ctx, message, "a@x.example", "user@x.example") == Milter.ACCEPT
    assert ("X-Spam-Flag", "YES", -1) in ctx.added
    assert ctx.changed == [("Subject", 1, "[SPAM] offer")]
    assert not [a for a in ctx.added if a[0] == "Subject"]


def test_size_limit_at_mail_from_size_parameter() -> None:
    ctx = milter_ctx({"size": {"max_bytes": 1000}})
    ctx._connect(ip="203.0.113.7")
    assert ctx._envfrom("<a@x.example>", "SIZE=5000") == Milter.REJECT
    assert ctx._reply[0] == "552" and ctx._reply[1] == "5.3.4"


def test_body_beyond_cap_is_counted_not_stored() -> None:
    ctx = milter_ctx({"milter": {"max_body_bytes": 10}, "size": {"max_bytes": 500}})
    ctx._connect(ip="203.0.113.7")
    assert feed(ctx, b"Subject: big\n\n" + b"y" * 2000 + b"\n") == Milter.REJECT
    assert ctx._reply[0] == "552"


def test_auth_and_client_address_reach_the_chain(caplog: pytest.LogCaptureFixture) -> None:
    ctx = milter_ctx()
    ctx._setsymval("{auth_authen}", "alice@test.example")
    ctx._setsymval("{auth_type}", "PLAIN")
    ctx._setsymval("i", "QUEUE1")
    with caplog.at_level("INFO", logger="milterfilters.decision"):
        ctx._connect(host="mail.client.example", ip="203.0.113.7")
        feed(ctx, b"Subject: hi\n\nhello\n")
    line = [r.getMessage() for r in caplog.records if r.name == "milterfilters.decision"][-1]
    assert "client=mail.client.example[203.0.113.7]" in line
    assert "auth=alice@test.example" in line and "queue_id=QUEUE1" in line and "action=accept" in line


def test_crashing_filter_tempfails_through_the_adapter() -> None:
    from milterfilters.builtin.gtube import GtubeFilter

    def boom(self: Any, ctx: Any) -> None:
        raise RuntimeError("kaboom")

    ctx = milter_ctx()
    original = GtubeFilter.eom
    GtubeFilter.eom = boom  # type: ignore[method-assign]
    try:
        ctx._connect(ip="203.0.113.7")
        assert feed(ctx, b"Subject: hi\n\nhello\n") == Milter.TEMPFAIL
        assert ctx._reply[:2] == ("451", "4.7.1")
    finally:
        GtubeFilter.eom = original  # type: ignore[method-assign]


class _NegotiationCtx:
    def __init__(self) -> None:
        self.symlists: dict[int, str] = {}

    def setsymlist(self, stage: int, names: str) -> None:
        self.symlists[stage] = names


def test_negotiation_asks_only_for_what_filters_need() -> None:
    disabled = ("gtube", "size", "relay", "authres_forgery", "classifier")
    chain = build_chain(config_from_dict({name: {"enabled": False} for name in disabled}))
    m: ChainMilter = make_milter_class(ChainHolder(chain))()
    fake = _NegotiationCtx()
    m._ctx = fake
    opts = [Milter.CURR_ACTS, 0x1FFFFF, 0, 0]
    assert m.negotiate(opts) == Milter.CONTINUE
    assert opts[1] & Milter.P_NOBODY and opts[1] & Milter.P_NOHDRS
    assert opts[1] & Milter.P_NR_CONN and opts[1] & Milter.P_NR_MAIL and opts[1] & Milter.P_NR_RCPT
    assert "{auth_authen}" in fake.symlists[Milter.M_ENVFROM]

    chain = build_chain(config_from_dict({}))  # gtube needs the body; size judges MAIL
    m = make_milter_class(ChainHolder(chain))()
    m._ctx = _NegotiationCtx()
    opts = [Milter.CURR_ACTS, 0x1FFFFF, 0, 0]
    m.negotiate(opts)
    assert not opts[1] & Milter.P_NOBODY
    assert not opts[1] & Milter.P_NR_MAIL
    assert opts[1] & Milter.P_HDR_LEADSPC


def test_reload_swaps_chain_for_new_connections_only() -> None:
    holder = ChainHolder(build_chain(config_from_dict({})))
    cls = make_milter_class(holder)
    old_conn = cls()
    new_chain = build_chain(config_from_dict({"scores": {"GTUBE": 7.0}}))
    holder.replace(new_chain)
    assert old_conn.chain is not new_chain
    assert cls().chain is new_chain


class NoChangesMTA(PlainMTA):
    """An MTA that lets milters add headers but neither change them nor quarantine."""

    offered: ClassVar[list[int]] = [
        Milter.ADDHDRS,
        0x1FFFFF & ~NO_REPLY_BITS & ~Milter.P_HDR_LEADSPC,
        0,
        0,
    ]


FORGED = b"Authentication-Results: mx.test; dkim=pass header.d=bank.example\nSubject: hi\n\nhello\n"


@pytest.mark.parametrize(("mta", "deleted"), [(PlainMTA, True), (NoChangesMTA, False)])
def test_header_changes_the_mta_does_not_offer_are_skipped_not_tempfailed(mta: type, deleted: bool) -> None:
    chain = build_chain(config_from_dict({"milter": {"authserv_id": "mx.test"}}))
    Milter.factory = make_milter_class(ChainHolder(chain))
    ctx = mta()
    ctx._connect(ip="203.0.113.7")
    assert feed(ctx, FORGED) == Milter.ACCEPT
    assert (("Authentication-Results", 1, None) in ctx.changed) is deleted
    assert chain.metrics.get("milter_actions_unavailable_total", action="delete header fields") == (
        not deleted
    )


def test_quarantine_the_mta_does_not_offer_still_accepts_with_headers() -> None:
    chain = build_chain(config_from_dict({"scores": {"GTUBE": 12.0}, "actions": {"quarantine": 10.0}}))
    Milter.factory = make_milter_class(ChainHolder(chain))
    ctx = NoChangesMTA()
    ctx._connect(ip="203.0.113.7")
    assert feed(ctx, b"Subject: q\n\n" + GTUBE + b"\n") == Milter.ACCEPT
    assert ("X-Spam-Flag", "YES", -1) in ctx.added
