"""Fuzzing message and header-field parsing: any bytes parse without an exception, bodies stay
within the cap, and a parsed message written out parses back to the same fields.
``scripts/fuzz.sh SECONDS`` runs these at length."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from milterfilters.mail.message import header_field, parse_message
from tests.support.fuzz import fuzz_settings


@fuzz_settings(300)
@given(st.binary(max_size=3000), st.integers(0, 2000))
def test_any_bytes_parse_and_round_trip(raw: bytes, cap: int) -> None:
    message = parse_message(raw, max_body_bytes=cap)
    assert len(message.body) <= cap and message.size >= len(message.body)
    again = parse_message(message.raw())
    assert [(h.name, h.value) for h in again.headers] == [(h.name, h.value) for h in message.headers]


@fuzz_settings(300)
@given(st.text(max_size=60), st.text(max_size=200))
def test_any_field_from_the_mta_is_read_without_error(name: str, value: str) -> None:
    field = header_field(name, value)
    assert field.name == name.rstrip(" \t")
    assert "\n" not in field.raw_value.replace("\r\n", "")
    field.raw_bytes()
