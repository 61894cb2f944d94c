"""Security regression: an Authentication-Results field that a sender wrote with our
authserv-id must not reach the mailbox beside ours (RFC 8601 5); other ids are kept."""

from __future__ import annotations

import io

import Milter
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters.api import build_chain, evaluate
from milterfilters.auth.authres_forgery import claimed_ids, normalize_authserv_id
from milterfilters.config import config_from_dict
from milterfilters.core.errors import ConfigError
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


# -- authserv-id read as RFC 8601 reads it (issue 10) ----------------------------------------

FORGED_SPELLINGS = [
    '"mx.test.example"; dkim=pass header.d=bank.example',  # a quoted-string
    "mx.test.example.; dkim=pass header.d=bank.example",  # a trailing dot
    "MX.TEST.EXAMPLE.; dmarc=pass header.from=bank.example",  # case and dot
    "(ours) mx.test.example (really); dkim=pass header.d=bank.example",  # comments around it
    '\r\n\t"MX.test.example."\r\n ; dkim=pass',  # folding white space and a quoted id with a dot
    '"mx.test\\.example"; dkim=pass',  # a quoted-pair inside the quoted-string
    "mx.test.example(no space); dkim=pass",  # a comment glued to the id
    "mx\uff0etest\u3002example; dkim=pass",  # look-alike dots
]


def only_field(value: str) -> bytes:
    return f"Authentication-Results: {value}\r\nFrom: a@bank.example\r\n\r\nhi\r\n".encode()


@pytest.mark.parametrize("value", FORGED_SPELLINGS)
def test_authserv_id_spelled_as_quoted_string_dotted_or_commented_is_removed(value: str) -> None:
    out = evaluate(chain_for(), only_field(value), recipients=["u@test.example"])
    assert HeaderDelete("Authentication-Results", 1) in out.decision.headers, value
    assert "AUTHRES_FORGED" in out.decision.symbols


@pytest.mark.parametrize(
    "value",
    ['"mx.test.example.evil"; dkim=pass', "other.example; dkim=pass", "(mx.test.example) other.example; x=1"],
)
def test_other_authserv_ids_are_kept_however_spelled(value: str) -> None:
    out = evaluate(chain_for(), only_field(value), recipients=["u@test.example"])
    assert not any(isinstance(h, HeaderDelete) for h in out.decision.headers), value


def _comment() -> st.SearchStrategy[str]:
    return st.sampled_from(["", " ", "\t", " (c) ", "(a (nested) \\) one)", "\r\n "])


@given(
    case=st.lists(st.booleans(), min_size=len(OURS), max_size=len(OURS)),
    quoted=st.booleans(),
    dots=st.integers(0, 2),
    before=_comment(),
    after=_comment(),
)
@settings(max_examples=150, deadline=None)
def test_any_spelling_of_our_authserv_id_is_read_as_ours(
    case: list[bool], quoted: bool, dots: int, before: str, after: str
) -> None:
    spelled = "".join(c.upper() if up else c for c, up in zip(OURS, case, strict=True)) + "." * dots
    if quoted:
        spelled = '"' + spelled.replace(".", "\\.", 1) + '"'
    value = f"{before}{spelled}{after}; dkim=pass header.d=bank.example"
    assert normalize_authserv_id(OURS) in claimed_ids(value)


@given(st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True))
def test_an_id_that_is_not_ours_is_never_read_as_ours(other: str) -> None:
    if normalize_authserv_id(other) == normalize_authserv_id(OURS):
        return
    assert normalize_authserv_id(OURS) not in claimed_ids(f'"{other}"; dkim=pass')
    assert normalize_authserv_id(OURS) not in claimed_ids(f"{other} 1; dkim=pass")


# -- verdict headers from outside (issue 10) -----------------------------------------------

VERDICTS = (
    b"X-Spam-Flag: YES\r\n"
    b"X-Milterfilters-Score: -50.00\r\n"
    b"X-Spam-Status: No, score=-50\r\n"
    b"x-spam-flag: NO\r\n"
    b"X-Milterfilters-Symbols: ALLOWLIST_DOMAIN(-50)\r\n"
    b"X-Milterfilters-Score: -49.00\r\n"
    b"X-Other: kept\r\n"
    b"From: a@x.example\r\nSubject: hi\r\n\r\nhello\r\n"
)


def test_incoming_x_spam_flag_and_x_milterfilters_score_are_removed() -> None:
    out = evaluate(chain_for(), VERDICTS, recipients=["u@test.example"])
    deleted = {(h.name.lower(), h.occurrence) for h in out.decision.headers if isinstance(h, HeaderDelete)}
    assert deleted == {
        ("x-spam-flag", 1),
        ("x-spam-flag", 2),
        ("x-spam-status", 1),
        ("x-milterfilters-score", 1),
        ("x-milterfilters-score", 2),
        ("x-milterfilters-symbols", 1),
    }
    assert "VERDICT_HEADER_REMOVED" in out.decision.symbols


def test_spam_status_list_is_configurable_but_our_namespace_always_goes() -> None:
    out = evaluate(chain_for(remove_fields=[]), VERDICTS, recipients=["u@test.example"])
    deleted = {h.name.lower() for h in out.decision.headers if isinstance(h, HeaderDelete)}
    assert deleted == {"x-milterfilters-score", "x-milterfilters-symbols"}
    out = evaluate(chain_for(remove_fields=["X-Other"]), VERDICTS, recipients=["u@test.example"])
    deleted = {h.name.lower() for h in out.decision.headers if isinstance(h, HeaderDelete)}
    assert deleted == {"x-milterfilters-score", "x-milterfilters-symbols", "x-other"}


def test_a_bad_field_name_in_remove_fields_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="remove_fields"):
        chain_for(remove_fields=["X-Spam Flag:"])


def test_the_milter_deletes_forged_verdicts_last_occurrence_first_before_adding_its_own() -> None:
    chain = build_chain(config_from_dict({"milter": {"authserv_id": OURS}}))
    Milter.factory = make_milter_class(ChainHolder(chain))
    ctx = RecordingMTA()
    ctx._connect(ip="203.0.113.7")
    rc = ctx._feedFile(io.BytesIO(VERDICTS), "a@x.example", "u@test.example")
    assert rc == Milter.ACCEPT
    deletions = [c for c in ctx.calls if c.startswith("delete")]
    first_add = ctx.calls.index(next(c for c in ctx.calls if c.startswith("add")))
    assert len(deletions) == 6 and ctx.calls[: len(deletions)] == deletions and first_add == len(deletions)
    # per name, the highest index first: the MTA renumbers after each deletion
    for name in ("X-Spam-Flag", "X-Milterfilters-Score"):
        indexes = [int(c.rsplit(" ", 1)[1]) for c in deletions if c.split()[1].lower() == name.lower()]
        assert indexes == [2, 1], deletions
    # what is delivered: only our own verdict fields
    assert [a[1].strip() for a in ctx.added if a[0] == "X-Milterfilters-Score"] == ["0.00"]
