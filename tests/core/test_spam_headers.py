"""The SpamAssassin-compatible verdict headers: X-Spam-Flag, -Status, -Score, -Level."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from milterfilters import Chain, ChainLink, Context, Filter, Finding, Policy, Verdict, build_chain, evaluate
from milterfilters.core.chain import SPAM_LEVEL_MAX, SpamHeaders
from milterfilters.core.services import Services
from milterfilters.core.verdict import HeaderAdd
from tests.support.defaultconfig import default_config
from tests.support.written_headers import assert_folded, unfold

MSG = b"From: a@example.org\nSubject: hello\n\nbody\n"
STATUS = re.compile(r"(Yes|No), score=(-?\d+\.\d) required=(-?\d+\.\d) tests=(\S+)")


def _finder(symbols: list[str]) -> Filter:
    def eom(self: Filter, ctx: Context) -> Verdict:
        return Verdict.found(*(Finding(s) for s in symbols))

    cls: type[Filter] = type("Finder", (Filter,), {"name": "finder", "eom": eom})
    return cls(None, Services())  # type: ignore[arg-type]


def headers_for(weights: dict[str, float], spam: SpamHeaders | None = None) -> dict[str, str]:
    chain = Chain([ChainLink(_finder(list(weights)))], Policy(weights=weights, tag=5.0), spam_headers=spam)
    return {h.name: h.value for h in evaluate(chain, MSG).decision.added_headers}


def test_tagged_mail_reads_as_spamassassin_writes_it() -> None:
    headers = headers_for({"B_SYMBOL": 4.0, "A_SYMBOL": 3.5})
    assert headers["X-Spam-Flag"] == "YES"
    assert headers["X-Spam-Status"] == "Yes, score=7.5 required=5.0 tests=A_SYMBOL,B_SYMBOL"
    assert headers["X-Spam-Score"] == "7.5"
    assert headers["X-Spam-Level"] == "*******"


def test_clean_mail_says_no_and_has_no_flag() -> None:
    headers = headers_for({})
    assert "X-Spam-Flag" not in headers
    assert headers["X-Spam-Status"] == "No, score=0.0 required=5.0 tests=none"
    assert headers["X-Spam-Level"] == ""


def test_the_level_is_capped_and_never_negative() -> None:
    assert headers_for({"HUGE": 1000.0})["X-Spam-Level"] == "*" * SPAM_LEVEL_MAX
    assert headers_for({"GOOD": -3.0})["X-Spam-Level"] == ""


def test_names_come_from_the_configuration_and_empty_leaves_a_field_out() -> None:
    chain = build_chain(
        {**_dns(), "actions": {"spam_status_header": "X-Our-Status", "spam_level_header": "", "tag": 1.0}}
    )
    names = [h.name for h in evaluate(chain, MSG, client_ip="127.0.0.1").decision.added_headers]
    assert "X-Our-Status" in names and "X-Spam-Status" not in names
    assert "X-Spam-Level" not in names and "X-Spam-Score" in names


def test_status_headers_off_turns_them_all_off() -> None:
    chain = build_chain({**_dns(), "actions": {"status_headers": False}})
    names = [h.name for h in evaluate(chain, MSG).decision.added_headers]
    assert not [n for n in names if n.startswith("X-Spam-") or n.startswith("X-Milterfilters-")]


def test_the_default_chain_writes_them() -> None:
    names = [h.name for h in evaluate(build_chain(default_config()), MSG).decision.added_headers]
    assert {"X-Spam-Status", "X-Spam-Score", "X-Spam-Level"} <= set(names)


def _dns() -> dict[str, object]:
    return {"dns": {"nameservers": ["127.0.0.1:9"]}}


@given(
    symbols=st.lists(st.from_regex(r"[A-Z][A-Z0-9_]{0,40}", fullmatch=True), max_size=40, unique=True),
    weight=st.floats(-50, 50, allow_nan=False),
    name=st.from_regex(r"X-[A-Za-z0-9-]{1,60}", fullmatch=True),
)
def test_status_is_folded_and_reads_back(symbols: list[str], weight: float, name: str) -> None:
    spam = SpamHeaders(status=name)
    weights = dict.fromkeys(symbols, weight)
    value = headers_for(weights, spam)[name]
    HeaderAdd(name, value)
    assert_folded(name, value)
    assert all(len(line) <= 78 for line in f"{name}: {value}".split("\n"))
    # as SpamAssassin readers take it: unfolded, the tab after a folded comma dropped
    match = STATUS.fullmatch(re.sub(r"\s+", " ", unfold(value).replace(",\t", ",")))
    assert match is not None, value
    assert match.group(4) == (",".join(sorted(symbols)) or "none")
