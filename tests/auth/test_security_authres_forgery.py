"""Security regression: an Authentication-Results field that a sender wrote with our
authserv-id must not reach the mailbox beside ours (RFC 8601 5); other ids are kept."""

from __future__ import annotations

import io

import Milter

from milterfilters.api import build_chain, evaluate
from milterfilters.config import config_from_dict
from milterfilters.core.verdict import HeaderDelete
from milterfilters.milter.adapter import ChainHolder, make_milter_class
from tests.support.plainmta import PlainMTA

OURS = "mx.test.example"
MESSAGE = (
    b"Authentication-Results: mx.test.example; dkim=pass header.d=bank.example\r\n"
    b"Authentication-Results: other.example; spf=pass smtp.mailfrom=a@x.example\r\n"
    b"Authentication-Results: MX.Test.Example 1; dmarc=pass header.from=bank.example\r\n"
    b"Authentication-Results: mx.test.example.evil.example; dkim=pass\r\n"
    b"From: support@bank.example\r\nSubject: verify your account\r\n\r\nclick\r\n"
)


def chain_for(**section: object):  # type: ignore[no-untyped-def]
    return build_chain(config_from_dict({"milter": {"authserv_id": OURS}, "authres_forgery": section}))


def test_fields_with_our_id_are_deleted_and_others_kept() -> None:
    out = evaluate(chain_for(), MESSAGE, recipients=["u@test.example"])
    deletions = [h for h in out.decision.headers if isinstance(h, HeaderDelete)]
    # occurrences among Authentication-Results fields, 1-based
    assert deletions == [HeaderDelete("Authentication-Results", 1), HeaderDelete("Authentication-Results", 3)]
    assert [f.finding.symbol for f in out.decision.findings] == ["AUTHRES_FORGED"]


def test_more_ids_of_our_domain_can_be_listed() -> None:
    out = evaluate(chain_for(also_ours=["other.example"]), MESSAGE, recipients=["u@test.example"])
    deleted = sorted(h.occurrence for h in out.decision.headers if isinstance(h, HeaderDelete))
    assert deleted == [1, 2, 3]


def test_a_clean_message_is_left_alone() -> None:
    out = evaluate(
        chain_for(), b"From: a@x.example\r\nSubject: hi\r\n\r\nhello\r\n", recipients=["u@test.example"]
    )
    assert not any(isinstance(h, HeaderDelete) for h in out.decision.headers)
    assert out.decision.findings == ()


class RecordingMTA(PlainMTA):
    """Also records the order of header changes (deletions must come before insertions)."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def addheader(self, field: str, value: str, idx: int) -> None:
        super().addheader(field, value, idx)
        self.calls.append(f"add {field}")

    def chgheader(self, field: str, idx: int, value: str | None) -> None:
        super().chgheader(field, idx, value)
        self.calls.append(f"delete {field} {idx}" if value is None else f"change {field} {idx}")


def test_the_milter_deletes_the_forged_fields_before_adding_its_own() -> None:
    # Postfix counts a field inserted a moment ago: were ours added first, "occurrence 1"
    # would be our own Authentication-Results (the real-Postfix test shows it)
    # the dkim filter adds dkim=none for this unsigned message, without any DNS
    chain = build_chain(config_from_dict({"milter": {"authserv_id": OURS}, "dkim": {"enabled": True}}))
    Milter.factory = make_milter_class(ChainHolder(chain))
    ctx = RecordingMTA()
    ctx._connect(ip="203.0.113.7")
    rc = ctx._feedFile(io.BytesIO(MESSAGE), "a@x.example", "u@test.example")
    assert rc == Milter.ACCEPT
    # the last occurrence first: an MTA may renumber after a deletion
    assert ctx.calls[:3] == [
        "delete Authentication-Results 3",
        "delete Authentication-Results 1",
        "add Authentication-Results",
    ]
