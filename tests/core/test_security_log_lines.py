"""Issue 10: a decision log line is bounded whatever the message — 10,000 recipients made a
200 KB line; long lists now keep their first items and a count, long strings are cut, in the
text and the JSON format alike."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters.core.context import Auth, Connection, Envelope
from milterfilters.core.decision_log import (
    MAX_LIST_ITEMS,
    MAX_VALUE_CHARS,
    LogFormat,
    decision_record,
    format_record,
)
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import Action, Decision, Finding, ScoredFinding

FORMATS: tuple[LogFormat, ...] = ("text", "json")


def _record(
    recipients: list[str], mail_from: str = "a@example.org", symbols: int = 1, login: str = ""
) -> dict[str, object]:
    findings = tuple(ScoredFinding("f", Finding(f"SYMBOL_{i}"), 1.0) for i in range(symbols))
    return decision_record(
        stage=Stage.EOM,
        decision=Decision(Action.ACCEPT, score=float(symbols), findings=findings),
        connection=Connection("192.0.2.1", 25, "client.example"),
        queue_id="ABC123",
        helo="client.example",
        auth=Auth(login=login) if login else None,
        envelope=Envelope(mail_from),
        recipients=recipients,
    )


@pytest.mark.parametrize("log_format", FORMATS)
def test_ten_thousand_recipients_make_a_short_line_with_a_count(log_format: LogFormat) -> None:
    recipients = [f"user{i:05d}@example.org" for i in range(10_000)]
    line = format_record(_record(recipients), log_format)
    assert len(line) < 2_000, len(line)
    assert "\n" not in line
    shown = "user00000@example.org" in line and f"user{MAX_LIST_ITEMS - 1:05d}@example.org" in line
    assert shown and f"user{MAX_LIST_ITEMS:05d}@" not in line
    marker = f"...(+{10_000 - MAX_LIST_ITEMS} more)"
    if log_format == "json":
        rcpt = json.loads(line)["rcpt"]
        assert rcpt[-1] == marker and len(rcpt) == MAX_LIST_ITEMS + 1
    else:
        assert f",{marker}" in line


@pytest.mark.parametrize("log_format", FORMATS)
def test_long_sender_and_login_are_cut_with_a_count(log_format: LogFormat) -> None:
    mail_from = "x" * 100_000 + "@example.org"
    line = format_record(_record(["u@example.org"], mail_from, login="L" * 50_000), log_format)
    assert len(line) < 3 * MAX_VALUE_CHARS + 500
    assert f"...(+{len(mail_from) - MAX_VALUE_CHARS} chars)" in line
    assert f"...(+{50_000 - MAX_VALUE_CHARS} chars)" in line


@pytest.mark.parametrize("log_format", FORMATS)
def test_many_symbols_are_truncated_too(log_format: LogFormat) -> None:
    line = format_record(_record(["u@example.org"], symbols=500), log_format)
    assert f"...(+{500 - MAX_LIST_ITEMS} more)" in line and "SYMBOL_499" not in line


@pytest.mark.parametrize("log_format", FORMATS)
def test_short_records_are_written_unchanged(log_format: LogFormat) -> None:
    record = _record(["a@example.org", "b@example.org"], symbols=3)
    line = format_record(record, log_format)
    assert "...(+" not in line
    if log_format == "json":
        assert json.loads(line) == record


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(max_size=2_000), max_size=300),
    st.text(max_size=5_000),
    st.sampled_from(FORMATS),
)
def test_every_line_is_bounded_and_one_line(
    recipients: list[str], mail_from: str, log_format: LogFormat
) -> None:
    line = format_record(_record(recipients, mail_from), log_format)
    # each list: at most MAX_LIST_ITEMS items of at most MAX_VALUE_CHARS (escaped: up to 6 bytes each)
    bound = 6 * (MAX_VALUE_CHARS + 30) * (2 * MAX_LIST_ITEMS + 4) + 2_000
    assert len(line) <= bound
    assert "\n" not in line and "\r" not in line
    if log_format == "json":
        assert len(json.loads(line)["rcpt"]) <= MAX_LIST_ITEMS + 1
