"""The milter and ``check`` must read the same header fields from the same message.

The attack: ``From : <ceo@victim.example>`` (white space before the colon, obsolete syntax
that mail clients display as From) was a From field for ``check`` but not for the adapter, so
through the milter DMARC found no From. Both now build fields with
:func:`milterfilters.mail.message.header_field`; these tests feed one raw message both ways
(``parse_message``, and the adapter fed field by field as an MTA hands them over) and compare.
"""

from __future__ import annotations

import re
from typing import Any

import Milter
import pytest
from hypothesis import given
from hypothesis import strategies as st

from milterfilters.api import build_chain
from milterfilters.config import config_from_dict
from milterfilters.core.chain import Session
from milterfilters.core.context import Message
from milterfilters.mail.message import header_field, parse_message
from milterfilters.milter.adapter import ChainHolder, make_milter_class
from tests.support.fuzz import fuzz_settings
from tests.support.plainmta import PlainMTA

_UNFOLD = re.compile(rb"\r?\n(?=[ \t])")


def mta_fields(raw: bytes) -> list[tuple[str, bytes]]:
    """Header fields as an MTA hands them to a milter: the name is everything before the first
    colon (white space kept, as a proxy or pymilter's own test MTA does), the value loses one
    leading space (Sendmail's habit, which Postfix copies) and folds are LF-separated."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    fields = []
    for unfolded in re.split(rb"\n(?![ \t])", head):
        if not unfolded:
            continue
        name, _, value = unfolded.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        fields.append((name.decode("ascii", "surrogateescape"), value))
    return fields


def through_the_adapter(raw: bytes) -> Message:
    """``raw`` fed to the adapter field by field (pymilter's TestCtx as the MTA); returns the
    Message the chain saw at end of data."""
    chain = build_chain(config_from_dict({}))
    Milter.factory = make_milter_class(ChainHolder(chain))
    seen: list[Message] = []
    original = Session.eom

    def spy(self: Session, message: Message, *args: Any, **kwargs: Any) -> Any:
        seen.append(message)
        return original(self, message, *args, **kwargs)

    ctx = PlainMTA()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Session, "eom", spy)
        ctx._connect(ip="203.0.113.7")
        ctx._envfrom("<a@client.example>")
        ctx._envrcpt("<user@test.example>")
        ctx._data()
        for name, value in mta_fields(raw):
            ctx._priv.header_bytes(name, value)
        ctx._priv.eoh()
        body = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1].replace(b"\n", b"\r\n")
        ctx._priv.body(body)
        ctx._eom()
    (message,) = seen
    return message


def assert_same_fields(raw: bytes) -> None:
    checked = parse_message(raw)
    milter = through_the_adapter(raw)
    assert milter.headers == checked.headers


def test_from_with_space_before_colon_is_a_from_field_both_ways() -> None:
    raw = b"From : CEO <ceo@victim.example>\r\nTo: staff@victim.example\r\nSubject: wire\r\n\r\npay\r\n"
    assert_same_fields(raw)
    assert through_the_adapter(raw).get("From") == "CEO <ceo@victim.example>"
    assert parse_message(raw).get("from") == "CEO <ceo@victim.example>"


def test_tab_before_colon_and_folded_values_read_the_same_both_ways() -> None:
    raw = (
        b"From\t: a@client.example\r\nSubject: one\r\n\ttwo\r\n  three\r\n"
        b"X-Eight: caf\xe9 \xff\r\n\r\nbody\r\n"
    )
    assert_same_fields(raw)
    assert parse_message(raw).get("subject") == "one\ttwo  three"


def test_header_field_reader_normalises_name_and_line_breaks() -> None:
    field = header_field("From \t", " a\n\tb\r\n c")
    assert field.name == "From"
    assert field.raw_value == " a\r\n\tb\r\n c"


_NAME = st.text(
    st.sampled_from("!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcxyz|~"), min_size=1, max_size=12
)
_TEXT = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        name = draw(_NAME).encode()
        gap = draw(st.sampled_from([b"", b" ", b"\t", b"  "]))
        value = b" " + draw(_TEXT).lstrip(b" \t")
        folds = draw(st.lists(_TEXT.map(lambda t: b"\t" + t), max_size=3))
        eol = draw(st.sampled_from([b"\r\n", b"\n"]))
        lines.append(name + gap + b":" + eol.join([value, *folds]) + eol)
    return b"".join(lines) + b"\r\nbody\r\n"


@fuzz_settings(150)
@given(header_blocks())
def test_any_header_block_reads_the_same_through_check_and_the_milter(raw: bytes) -> None:
    assert_same_fields(raw)
